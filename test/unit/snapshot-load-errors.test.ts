/**
 * PUT /snapshot/load refusals through the real `bin/kindling` process (no KVM needed: each
 * fails before the VM is built). As Firecracker: a failed load answers 400 with its text
 * after "Load snapshot error: Failed to restore from snapshot: ", then the process exits 1
 * (src/vmm/src/rpc_interface.rs: a load failure is fatal); a load after a boot resource was
 * configured is refused without ending the process.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeStateFile } from '../../src/snapshot/state-file.js';
import { MicroVm } from '../../src/vmm/microvm.js';
import { VmmActionError } from '../../src/vmm/actions.js';
import { KindlingProc } from '../helpers/kindling-proc.js';
import { withTimeout } from '../helpers/guest.js';

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'kindling-snapload-'));
const PREFIX = 'Load snapshot error: Failed to restore from snapshot: ';

/** A state file that passes every check before guest memory (2 MiB guest, no devices). */
function validState(): Uint8Array {
  const bytes = (n: number) => new Uint8Array(n);
  return encodeStateFile({
    config: {
      instanceId: 'x', machine: { vcpu_count: 1, mem_size_mib: 2, smt: false, track_dirty_pages: false, huge_pages: 'None', cpu_template: null, custom_cpu_template: null },
      bootSource: { kernel_image_path: '', initrd_path: null, boot_args: null, cmdline: { boot_args: '', init_args: '' } },
      drives: [], networkInterfaces: [], vsock: null, balloon: null, entropy: null, pmem: [], memoryHotplug: null, mmds: null,
      serial: { serial_out_path: null }, bootTimer: false, pciEnabled: false,
    },
    memory: { regions: [{ gpa: 0, size: 2 * MiB }] },
    vm: { pit2: bytes(112), clock: bytes(48), picMaster: bytes(520), picSlave: bytes(520), ioapic: bytes(520) },
    vcpus: [{ mpState: 0, regs: bytes(144), sregs: bytes(312), xsave: bytes(4096), xcrs: bytes(392), debugregs: bytes(128), lapic: bytes(1024), tscKhz: 0, cpuidEntries: 0, cpuid: bytes(0), msrs: [], vcpuEvents: bytes(64) }],
    legacy: { serial: bytes(0), i8042: bytes(0) },
    devices: { blocks: [], nets: [], vsock: null, entropy: null },
  });
}

/** Loads `body` in a fresh process; returns the fault message and the exit code. */
async function failedLoad(name: string, body: Record<string, unknown>): Promise<{ fault: string; code: number | null }> {
  const p = new KindlingProc(dir, name);
  try {
    const api = await p.api();
    const r = await api.request('PUT', '/snapshot/load', body);
    assert.is(r.status, 400, r.body);
    const code = await withTimeout(p.exit, 20_000, `the process did not exit after a failed load${p.tail()}`);
    return { fault: JSON.parse(r.body).fault_message as string, code };
  } finally {
    await p.kill();
  }
}

const file = (path: string) => ({ backend_type: 'File', backend_path: path });

test('missing, damaged and foreign state files: Firecracker\'s texts, then exit 1', async () => {
  const state = join(dir, 'ok.state');
  writeFileSync(state, validState());
  const bad = Buffer.from(validState());
  bad[40] ^= 1;
  writeFileSync(join(dir, 'bad.state'), bad);
  writeFileSync(join(dir, 'empty.state'), '');
  const missing = await failedLoad('missing', { snapshot_path: join(dir, 'nope.state'), mem_backend: file(join(dir, 'nope.mem')) });
  assert.is(missing.fault, `${PREFIX}Failed to get snapshot state from file: Failed to open snapshot file: No such file or directory (os error 2)`);
  assert.is(missing.code, 1);
  const crc = await failedLoad('crc', { snapshot_path: join(dir, 'bad.state'), mem_backend: file(join(dir, 'nope.mem')) });
  assert.is(crc.fault, `${PREFIX}Failed to get snapshot state from file: Failed to load snapshot state from file: CRC64 validation failed`);
  assert.is(crc.code, 1);
  const empty = await failedLoad('empty', { snapshot_path: join(dir, 'empty.state'), mem_backend: file(join(dir, 'nope.mem')) });
  assert.match(empty.fault, /Failed to load snapshot state from file: IO Error: File too short to contain CRC$/);
  assert.is(empty.code, 1);
});

test('missing or short memory file: refused before anything is mapped, then exit 1', async () => {
  const state = join(dir, 'ok2.state');
  writeFileSync(state, validState());
  writeFileSync(join(dir, 'short.mem'), Buffer.alloc(MiB));
  const gone = await failedLoad('nomem', { snapshot_path: state, mem_backend: file(join(dir, 'nope.mem')) });
  assert.is(gone.fault, `${PREFIX}Failed to load guest memory: Error creating guest memory from file: Failed to load guest memory: No such file or directory (os error 2)`);
  assert.is(gone.code, 1);
  const short = await failedLoad('short', { snapshot_path: state, mem_backend: file(join(dir, 'short.mem')) });
  assert.is(short.fault, `${PREFIX}Failed to load guest memory: Error creating guest memory from file: Failed to restore guest memory: Total sum of memory regions exceeds largest possible file offset`);
  assert.is(short.code, 1);
  const override = await failedLoad('override', { snapshot_path: state, mem_backend: file(join(dir, 'short.mem')), network_overrides: [{ iface_id: 'eth9', host_dev_name: 'tap9' }] });
  assert.is(override.fault, `${PREFIX}Failed to get snapshot state from file: Unknown Network Device.`);
  const uffd = await failedLoad('uffd', { snapshot_path: state, mem_backend: { backend_type: 'Uffd', backend_path: join(dir, 'no-handler.sock') } });
  assert.match(uffd.fault, /^Load snapshot error: Failed to restore from snapshot: Failed to load guest memory: Error creating guest memory from uffd: Failed to connect to UDS Unix stream: .*no-handler\.sock/);
  assert.is(uffd.code, 1);
});

test('the library: MicroVm.loadSnapshot rejects with the API\'s error and text', async () => {
  const e = await MicroVm.loadSnapshot({ snapshot_path: join(dir, 'none.state'), mem_backend: file(join(dir, 'none.mem')) }, { log: () => {} })
    .then(() => undefined, (x: Error) => x);
  assert.instance(e, VmmActionError);
  assert.is(e!.message, `${PREFIX}Failed to get snapshot state from file: Failed to open snapshot file: No such file or directory (os error 2)`);
  const bad = await MicroVm.loadSnapshot({ snapshot_path: 'x' }, { log: () => {} }).then(() => undefined, (x: Error) => x);
  assert.instance(bad, VmmActionError);
  assert.match(bad!.message, /missing field: either `mem_backend` or `mem_file_path` is required/);
});

test('a load after a boot resource was configured is refused and the process serves on', async () => {
  const p = new KindlingProc(dir, 'preboot');
  try {
    const api = await p.api();
    assert.is((await api.request('PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 128 })).status, 204);
    const r = await api.request('PUT', '/snapshot/load', { snapshot_path: join(dir, 'ok.state'), mem_backend: file(join(dir, 'x.mem')) });
    assert.is(r.status, 400);
    assert.is(JSON.parse(r.body).fault_message, 'Load snapshot error: Loading a microVM snapshot not allowed after configuring boot-specific resources.');
    assert.is((await api.request('GET', '/')).status, 200, 'still serving');
  } finally {
    await p.kill();
  }
});

test.run();
