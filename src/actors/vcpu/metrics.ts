/**
 * The `vcpu` metric group with Firecracker's names (firecracker src/vmm/src/logger/metrics.rs
 * `VcpuMetrics`), kept per vCPU in a SharedArrayBuffer: the vCPU worker counts its exits,
 * their handling latency and its failures on its own thread (Atomics, no message per exit,
 * docs/design.md "Threads and actors"); main counts `kvmclock_ctrl_fails` when it pauses the
 * vCPU; the metrics flusher on main sums every vCPU into the one `vcpu` group Firecracker emits
 * (src/vmm/vmm.ts).
 *
 * What is counted where Firecracker counts it (vstate/vcpu.rs `handle_kvm_exit`,
 * arch/x86_64/vcpu.rs `run_arch_emulation`): every port-IO and MMIO exit handled on the bus
 * (`exit_*`) and the time its bus access took (`exit_*_agg`, microseconds of the monotonic clock,
 * as LatencyMetricsRecorder measures it); `failures` for each exit that ends the vCPU with an
 * error (FAIL_ENTRY, INTERNAL_ERROR, a system event other than reset/shutdown, any other exit
 * reason — a triple fault's KVM_EXIT_SHUTDOWN among them — and a failed KVM_RUN).
 */
import { deviceMetricsClass, type MetricsSnapshot, type SharedDeviceMetrics } from '../../devices/virtio/shared-metrics.js';

/** Counter names, in Firecracker's declaration order. */
export const VCPU_METRIC_COUNTERS = ['exit_io_in', 'exit_io_out', 'exit_mmio_read', 'exit_mmio_write', 'failures', 'kvmclock_ctrl_fails'] as const;
/** Latency aggregate names (each {min_us, max_us, sum_us}). */
export const VCPU_LATENCY_METRICS = ['exit_io_in_agg', 'exit_io_out_agg', 'exit_mmio_read_agg', 'exit_mmio_write_agg'] as const;

export type VcpuCounter = (typeof VCPU_METRIC_COUNTERS)[number];
export type VcpuLatencyMetric = (typeof VCPU_LATENCY_METRICS)[number];
/** Every vCPU metric's absolute value. */
export type VcpuMetricsSnapshot = MetricsSnapshot<VcpuCounter, VcpuLatencyMetric>;

/** One vCPU's metrics. */
export const VcpuMetrics = deviceMetricsClass<VcpuCounter, VcpuLatencyMetric>(VCPU_METRIC_COUNTERS, VCPU_LATENCY_METRICS);
/** An instance of VcpuMetrics. */
export type VcpuMetrics = SharedDeviceMetrics<VcpuCounter, VcpuLatencyMetric>;

/** The monotonic clock in whole microseconds (`get_time_us(ClockType::Monotonic)`). */
export function monotonicUs(): number {
  return Math.floor(performance.now() * 1000);
}

/**
 * The `vcpu` group of several vCPUs: counters and `sum_us` add up; `min_us` is the smallest
 * non-zero minimum and `max_us` the largest maximum (0 means "no sample", as in
 * LatencyMetricsRecorder).
 */
export function sumVcpuMetrics(all: readonly VcpuMetricsSnapshot[]): VcpuMetricsSnapshot {
  const out = {} as Record<string, unknown>;
  for (const c of VCPU_METRIC_COUNTERS) out[c] = all.reduce((n, s) => n + s[c], 0);
  for (const l of VCPU_LATENCY_METRICS) {
    const mins = all.map((s) => s[l].min_us).filter((v) => v !== 0);
    out[l] = {
      min_us: mins.length ? Math.min(...mins) : 0,
      max_us: all.reduce((m, s) => Math.max(m, s[l].max_us), 0),
      sum_us: all.reduce((n, s) => n + s[l].sum_us, 0),
    };
  }
  return out as VcpuMetricsSnapshot;
}
