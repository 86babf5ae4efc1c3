/**
 * Assertion helpers for API tests: exact status + exact fault_message, the serde prefix, and a
 * fresh harness per test.
 */
import * as assert from 'uvu/assert';
import type { ApiHarness } from './api-harness.js';

/** The wrapper Firecracker puts around serde_json errors. */
export const serde = (msg: string): string => `An error occurred when deserializing the json body of a request: ${msg}.`;

/** The pre/post-boot violation texts. */
export const PRE_BOOT = 'The requested operation is not supported before starting the microVM.';
export const POST_BOOT = 'The requested operation is not supported after starting the microVM.';

type Method = 'GET' | 'PUT' | 'PATCH' | 'DELETE';

/** Sends a request and asserts a 2xx reply; returns the parsed body (if any). */
export async function ok(h: ApiHarness, method: Method, path: string, body?: unknown, status = 204): Promise<unknown> {
  const r = await h.client.request(method, path, body);
  assert.is(r.status, status, `${method} ${path}: ${r.body}`);
  return r.body ? JSON.parse(r.body) : undefined;
}

/** Sends a request and asserts the exact status and fault_message. */
export async function fault(h: ApiHarness, method: Method, path: string, body: unknown, message: string, status = 400): Promise<void> {
  const r = await h.client.request(method, path, body);
  assert.is(r.status, status, `${method} ${path}: ${r.body}`);
  assert.is((JSON.parse(r.body) as { fault_message: string }).fault_message, message);
}

/** Configures a bootable VM (boot source) and starts it. */
export async function boot(h: ApiHarness): Promise<void> {
  await ok(h, 'PUT', '/boot-source', { kernel_image_path: h.kernel });
  await ok(h, 'PUT', '/actions', { action_type: 'InstanceStart' });
}
