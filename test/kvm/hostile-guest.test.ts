/**
 * A hostile guest under real KVM (issue 12 item 3). One microVM, booted through the MicroVm
 * library with three virtio-blk drives (a: Sync engine, b: Async/io_uring, c: a witness), runs
 * a kernel-less payload (test/helpers/hostile-cpu.ts) that executes whatever the host asks:
 * nonsense to every virtio-mmio register, broken queue layouts at DRIVER_OK, malicious request
 * chains on both attacked queues (test/helpers/virtq-attacks.ts: loops, out-of-RAM buffers,
 * addresses wrapping 2^64, huge lengths, bogus head and next indexes, indirect descriptors),
 * notify storms, port I/O and MMIO hammering, and finally avail.idx jumps that break a queue.
 *
 * Asserted throughout: the VMM stays up and the vCPU keeps running the guest (every batch
 * finishes); each attacked chain is answered exactly as the virtio-blk model promises (used
 * length 0, status byte untouched, `execute_fails` counted) and a probe read right behind it
 * still works; a broken queue ends in DEVICE_NEEDS_RESET while the other drives and the
 * library (pause/resume, PATCH) keep working. Host memory outside guest RAM is checked with
 * canaries that a stray access would change: the slack of the guest-RAM SharedArrayBuffer
 * right before and after the mapped RAM (host pages next to guest RAM, where an io_uring
 * buffer overrunning RAM would land), the last page of guest RAM, and the backing files
 * (byte-for-byte unchanged, so no host byte was ever written to disk).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MicroVm } from 'kindling';
import { createMetrics } from '../../src/metrics/metrics.js';
import { MiB, VIRTIO_MMIO_SIZE, VIRTIO_MMIO_START, I8042_COMMAND_PORT } from '../../src/arch/x86_64/layout.js';
import {
  VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_T_OUT, VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1,
  VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_STATUS,
  featureBit,
} from '../../src/devices/virtio/constants.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import { HostileCpu, OP, writeHostileElf, type Command } from '../helpers/hostile-cpu.js';
import { CHAIN_ATTACKS, HostileDrive, checkOutcome, layRequest } from '../helpers/virtq-attacks.js';
import { brokenLayouts, hammering, registerAbuse, serialLine, type Batch } from '../helpers/hostile-io.js';
import { GuestArena } from '../helpers/mock-queue.js';
import { pattern } from '../helpers/block-rig.js';
import { ConsoleLog, withTimeout } from '../helpers/guest.js';

const RAM_MIB = 128;
const RAM_END = RAM_MIB * MiB;
const DISK_BYTES = 1 * MiB;
/** Guest RAM the test lays out: rings per drive, then a scratch arena renewed per case. */
const RINGS = 0x20_0000;
const SCRATCH = 0x30_0000;
const SCRATCH_END = 0x40_0000;
const VERSION_1 = featureBit(VIRTIO_F_VERSION_1);
/** ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK: an activated device (§3.1.1). */
const STATUS_LIVE = 0xf;

const dir = mkdtempSync(join(tmpdir(), 'kindling-hostile-'));
const files = ['a', 'b', 'c'].map((name, i) => {
  const path = join(dir, `${name}.img`);
  writeFileSync(path, pattern(DISK_BYTES, 0x31 + i));
  return path;
});
const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');
const sums = files.map(sha);
const metrics = createMetrics();
const logs: string[] = [];
const vm = new MicroVm({
  'boot-source': { kernel_image_path: writeHostileElf(join(dir, 'hostile.elf')), boot_args: '' },
  'machine-config': { vcpu_count: 1, mem_size_mib: RAM_MIB },
  drives: [
    { drive_id: 'a', is_root_device: false, path_on_host: files[0]!, cache_type: 'Writeback' },
    { drive_id: 'b', is_root_device: false, path_on_host: files[1]!, cache_type: 'Writeback', io_engine: 'Async' },
    { drive_id: 'c', is_root_device: false, path_on_host: files[2]! },
  ],
}, { log: (level, msg) => logs.push(`${level}: ${msg}`), metrics });
const con = new ConsoleLog(vm.console);
let cpu: HostileCpu;
let mem: GuestMemory;
let drives: HostileDrive[];
const counts = { registerBatches: 0, layoutCases: 0, chainCases: 0, hammerBatches: 0, notifies: 0 };
/** Set when the first test boots the VM (the tier imports every file before running any). */
let started = 0;
/** Host bytes around guest RAM and the last RAM page, filled with canaries before any attack. */
let canaries: { view: Uint8Array; want: Uint8Array }[] = [];

const freshArena = (): GuestArena => new GuestArena(SCRATCH, SCRATCH_END);
/** Block metric deltas since the previous call, per drive. */
function blockDeltas(): Record<string, Record<string, number>> {
  const snap = metrics.snapshot(true) as Record<string, Record<string, number>>;
  return Object.fromEntries(['a', 'b', 'c'].map((d) => [d, snap[`block_${d}`]!]));
}

/** Runs batches, asserting every expected read; counts them. */
async function runBatches(batches: readonly Batch[]): Promise<number> {
  for (const b of batches) {
    const out = await cpu.run(b.cmds);
    for (const [i, want] of b.expect) {
      const c = out[i]!;
      const halves = c.op === OP.R64 ? [c.value, c.extra] : [c.extra];
      assert.ok(halves.every((h) => h === want), `${b.name}: command ${i} (op ${c.op} at 0x${c.addr.toString(16)}) read ${halves.map((h) => `0x${h!.toString(16)}`).join(':')}, expected 0x${want.toString(16)}`);
    }
  }
  return batches.length;
}

test('the hostile payload boots under KVM and answers the mailbox', async () => {
  started = performance.now();
  await vm.start();
  mem = vm.memory;
  cpu = new HostileCpu(mem, () => vm.state === 'Running');
  await cpu.run([], 60_000);
  drives = ['a', 'b', 'c'].map((name, i) => new HostileDrive(name, VIRTIO_MMIO_START + i * VIRTIO_MMIO_SIZE, mem, cpu, RINGS + i * 0x1_0000, readFileSync(files[i]!), RAM_END));
  const ram = vm.memory.regions[0]!;
  assert.is(ram.gpa + ram.size, RAM_END, 'one RAM region below the MMIO gap');
  const buf = ram.bytes.buffer as SharedArrayBuffer;
  const slack = [new Uint8Array(buf, 0, ram.bytes.byteOffset), new Uint8Array(buf, ram.bytes.byteOffset + ram.size)];
  assert.ok(slack[0]!.length + slack[1]!.length > 0, 'the RAM view has host slack around it (2 MiB alignment)');
  canaries = [...slack, ram.bytes.subarray(ram.size - 4096)].map((view, i) => {
    view.set(pattern(view.length, 0xa0 + i));
    return { view, want: Uint8Array.from(view) };
  });
});

test('register abuse and broken queue layouts leave the transport resettable; then the drives initialise', async () => {
  const [a] = drives;
  counts.registerBatches += await runBatches(registerAbuse(a!.base, a!.capacity));
  const layouts = brokenLayouts(a!.base, a!.q.config, RAM_END);
  counts.layoutCases += await runBatches(layouts);
  for (const d of drives) {
    const features = d.name === 'c' ? VERSION_1 : VERSION_1 | featureBit(VIRTIO_BLK_F_FLUSH);
    assert.is(await d.init(features), STATUS_LIVE, `drive ${d.name} is live after a clean initialisation`);
  }
  // Queue registers and features are frozen once DRIVER_OK is accepted (§4.2.3.2).
  const a0 = a!.base;
  await cpu.run([VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_READY, 0x20, 0x64]
    .map((off): Command => ({ op: OP.W32, addr: a0 + off, value: 0xdead_0000 })));
  for (const d of drives) await d.probe(freshArena());
  assert.is(blockDeltas().a!.activate_fails, 0, 'refused layouts never reached the device worker');
});

test('malicious chains on the Sync and the Async drive are rejected one by one; probes behind them work', async () => {
  blockDeltas();
  // Every case runs even after a failure, so one report lists them all and later canary
  // checks see whatever a wrongly executed case did.
  const problems: string[] = [];
  for (const d of drives.slice(0, 2)) {
    let rejected = 0;
    for (const attack of CHAIN_ATTACKS) {
      const arena = freshArena();
      const e = attack.post(d.ctx(arena));
      counts.chainCases++;
      rejected += e.rejected.length + e.lost;
      const used = await d.probe(arena, 10_000).catch((err: Error) => err);
      if (used instanceof Error) {
        problems.push(`drive ${d.name}, ${attack.name}: ${used.message}`);
        break; // a hung device answers no later probe either
      }
      const problem = checkOutcome(mem, used.slice(0, -1), e);
      if (problem) problems.push(`drive ${d.name}, ${attack.name}: ${problem}`);
    }
    const m = blockDeltas()[d.name]!;
    if (m.execute_fails !== rejected) problems.push(`drive ${d.name}: execute_fails ${m.execute_fails}, expected ${rejected}`);
    if (m.invalid_reqs_count !== 1) problems.push(`drive ${d.name}: invalid_reqs_count ${m.invalid_reqs_count}, expected 1 (the UNSUPP type)`);
    if (m.write_count + m.write_bytes + m.flush_count !== 0) problems.push(`drive ${d.name}: ${m.write_bytes} bytes written, ${m.flush_count} flushes`);
    if (m.read_count !== CHAIN_ATTACKS.length) problems.push(`drive ${d.name}: ${m.read_count} reads, expected one probe per case`);
    const status = await d.status();
    if (status !== STATUS_LIVE) problems.push(`drive ${d.name}: status 0x${status.toString(16)} after rejected requests`);
  }
  assert.equal(problems, []);
});

test('notify storms, port I/O and MMIO hammering: the vCPU and every device keep working', async () => {
  for (const d of drives) {
    await cpu.run(Array.from({ length: 2000 }, () => d.notifyCmd()));
    await cpu.run(Array.from({ length: 50 }, () => d.notifyCmd(1 + (counts.notifies % 0xffff))));
    counts.notifies += 2050;
    await d.probe(freshArena());
  }
  counts.hammerBatches += await runBatches(hammering(RAM_END, drives[2]!.base, SCRATCH));
  await cpu.run(serialLine('HOSTILE_SERIAL_STILL_WORKS'));
  await con.waitFor(/HOSTILE_SERIAL_STILL_WORKS/, 30_000);
  for (const d of drives) await d.probe(freshArena());
});

test('avail.idx jumps break a queue: NEEDS_RESET, reset latches FAILED, the other drives live on', async () => {
  const [a, b, c] = drives as [HostileDrive, HostileDrive, HostileDrive];
  const waitStatus = async (d: HostileDrive, bit: number): Promise<number> => {
    for (let i = 0; i < 200; i++) {
      const s = await d.status();
      if (s & bit) return s;
      await new Promise((r) => setTimeout(r, 20));
    }
    return d.status();
  };
  const usedBefore = a.q.usedIdx();
  a.q.setAvailIdx(a.q.availIdx() + 1000);
  await cpu.run([a.notifyCmd()]);
  assert.is(await waitStatus(a, VIRTIO_CONFIG_S_NEEDS_RESET), STATUS_LIVE | VIRTIO_CONFIG_S_NEEDS_RESET, 'drive a asks for a reset');
  await b.probe(freshArena());
  await c.probe(freshArena());
  assert.is(a.q.usedIdx(), usedBefore, 'the broken queue published nothing');
  // Firecracker's block device cannot reset: status 0 latches FAILED and re-initialising is refused.
  await cpu.run([{ op: OP.W32, addr: a.base + VIRTIO_MMIO_STATUS, value: 0 }, { op: OP.W32, addr: a.base + VIRTIO_MMIO_STATUS, value: 1 }]);
  assert.is(await a.status(), VIRTIO_CONFIG_S_FAILED);
  // The device model still holds its activation, so every further reset must latch FAILED
  // again and a new initialisation must be refused: otherwise the transport would accept
  // DRIVER_OK for rings the device worker never takes over.
  await cpu.run([{ op: OP.W32, addr: a.base + VIRTIO_MMIO_STATUS, value: 0 }]);
  assert.is(await a.status(), VIRTIO_CONFIG_S_FAILED, 'a second reset latches FAILED again');
  assert.is(await a.init(VERSION_1), VIRTIO_CONFIG_S_FAILED, 're-initialising the unresettable device is refused');
  // Drive b's driver moves avail.idx backwards: 0xffff chains "pending" also breaks the queue.
  b.q.setAvailIdx(b.q.availIdx() - 1);
  await cpu.run([b.notifyCmd()]);
  assert.is(await waitStatus(b, VIRTIO_CONFIG_S_NEEDS_RESET), STATUS_LIVE | VIRTIO_CONFIG_S_NEEDS_RESET, 'drive b asks for a reset');
  await c.probe(freshArena());
  const m = blockDeltas();
  assert.ok(m.a!.event_fails! >= 1 && m.b!.event_fails! >= 1, 'broken queues counted in event_fails');
});

test('the library and host memory: pause/resume, PATCH on a broken drive, canaries and files intact', async () => {
  const [, b, c] = drives as [HostileDrive, HostileDrive, HostileDrive];
  // Bounded: a device worker stuck in a loop would never answer a PATCH.
  const within = <T>(p: Promise<T>, what: string): Promise<T> => withTimeout(p, 30_000, `${what} did not complete`);
  await within(vm.pause(), 'pause');
  await within(vm.resume(), 'resume');
  await within(vm.updateDrive('a', { rate_limiter: { ops: { size: 100, refill_time: 1000 } } }), 'PATCH of the broken drive a');
  const grown = join(dir, 'b2.img');
  writeFileSync(grown, pattern(2 * DISK_BYTES, 0x40));
  await within(vm.updateDrive('b', { path_on_host: grown }), 'PATCH of the broken drive b');
  assert.is(await cpu.read32(b.base + VIRTIO_MMIO_CONFIG), (2 * DISK_BYTES) / 512, 'drive b shows its new capacity');
  // One legitimate write on the witness: its file changes there and nowhere else.
  const payload = pattern(512, 0x99);
  const arena = freshArena();
  const buf = arena.alloc(512, 512);
  // The VM's memory object comes from the library bundle ('kindling'), whose GuestMemoryError
  // is not this module tree's class: check for any Error, not with must().
  const wrote = mem.write(buf, payload);
  if (wrote instanceof Error) throw wrote;
  const w = layRequest(c.ctx(arena), { type: VIRTIO_BLK_T_OUT, sector: 5n, data: { addr: buf, len: 512 } });
  c.q.publish(w.idx[0]!);
  c.disk.set(payload, 5 * 512); // what probes (and the file) must show from now on
  const used = await c.probe(arena);
  assert.equal(used.slice(0, -1), [{ id: w.idx[0]!, len: 1 }], 'the witness completed the write');
  assert.ok(readFileSync(files[2]!).equals(c.disk), 'drive c: only sector 5 changed');
  assert.is(sha(files[0]!), sums[0], 'drive a backing file unchanged');
  assert.is(sha(files[1]!), sums[1], 'drive b backing file unchanged');
  canaries.forEach((k, i) => assert.ok(Buffer.from(k.view).equals(k.want), `canary ${i} (${i < 2 ? 'host slack around guest RAM' : 'last guest RAM page'}) intact`));
});

test('the guest resets through the i8042 after all that: exit code 0, no worker failed', async () => {
  await cpu.run([{ op: OP.OUTB, addr: I8042_COMMAND_PORT, value: 0xfe }]).catch(() => undefined);
  const exit = await withTimeout(vm.exit, 60_000, 'the guest reset did not stop the VM');
  const secs = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`\n    hostile guest: ${counts.registerBatches} register batches, ${counts.layoutCases} broken layouts, ${counts.chainCases} malicious chains (${CHAIN_ATTACKS.length} kinds x 2 drives), ${counts.notifies} stray notifies, ${counts.hammerBatches} port/MMIO hammer batches; ${cpu.executed} guest commands in ${secs} s`);
  assert.is(exit.code, 0, exit.reason);
  assert.match(exit.reason, /reset/);
  assert.ok(!logs.some((l) => /worker failed|exited/.test(l)), logs.filter((l) => l.startsWith('error')).join(' | '));
});

test.run();
