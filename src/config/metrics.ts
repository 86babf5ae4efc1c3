/**
 * PUT /metrics body (firecracker src/vmm/src/vmm_config/ Metrics; vmm_config/metrics.rs). Unknown fields are accepted
 * (no deny_unknown_fields). `emit_id` and `properties` come from Firecracker after 1.16; v1.16.1
 * ignores them as unknown fields, Kindling honours them.
 */
import { Desc, bool, deserialize, field, map, opt, path, str, struct } from './serde.js';

/** The PUT /metrics body. */
export interface MetricsConfig {
  metrics_path: string;
  emit_id: boolean;
  properties: Record<string, string> | null;
}

/** serde description of `MetricsConfig` (unknown fields ignored). */
export const METRICS: Desc = struct(
  'MetricsConfig',
  [field('metrics_path', path), field('emit_id', bool, () => false), field('properties', opt(map(str)))],
  false,
);


/** Parses a PUT /metrics body. */
export function parseMetricsConfig(body: Uint8Array | string): MetricsConfig {
  return deserialize<MetricsConfig>(body, METRICS);
}
