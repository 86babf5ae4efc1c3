/**
 * The vCPU actor under real KVM: shared guest RAM across workers, two vCPU workers running
 * at once, the kick (pause takes a vCPU out of a guest loop that never exits: one
 * KVM_EXIT_INTR, its counter frozen while a sibling vCPU counts on, moving again after
 * resume; 20 rounds), and a 4.5 GiB layout that registers both RAM regions without touching
 * their pages; pre-started vCPU actors (actor-pool.ts) taking a VM, and unused ones draining.
 */
import { test } from 'uvu';
import { spawn } from 'node:child_process';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import { tinyVm, readRing } from '../helpers/tiny-vm.js';
import { VCPU_EXIT_KIND, VCPU_STATE } from '../../src/actors/vcpu/protocol.js';
import { Kvm } from '../../src/kvm/kvm.js';
import { HostGuestMemory } from '../../src/memory/host-memory.js';
import { must } from '../../src/memory/guest-memory.js';
import { pollUntil } from '../helpers/poll.js';
import { withTimeout } from '../helpers/guest.js';
import { ramRanges, GiB, MMIO32_MEM_START } from '../../src/arch/x86_64/layout.js';
import { drainActorPool, prewarmActors, warmActorCount } from '../../src/actors/actor-pool.js';

// 16-bit real-mode code, hand-assembled (DS = 0).
const SHARE_PROGRAM = [
  0x66, 0xc7, 0x06, 0x00, 0x20, 0xbe, 0xba, 0xfe, 0xca, // mov dword [0x2000], 0xcafebabe
  0xb0, 0x01, //                                           mov al, 1
  0xe6, 0xe9, //                                           out 0xe9, al      ; "pattern written"
  0x66, 0xa1, 0x00, 0x30, //                               l: mov eax, [0x3000]
  0x66, 0x85, 0xc0, //                                     test eax, eax
  0x74, 0xf7, //                                           jz l
  0xba, 0xe9, 0x00, //                                     mov dx, 0xe9
  0x66, 0xef, //                                           out dx, eax       ; what the host wrote
  0xf4, //                                                 hlt
];

test('guest RAM is one memory: guest writes, another worker reads; host writes, guest reads', async () => {
  const t = await tinyVm([{ addr: 0x1000, code: SHARE_PROGRAM }]);
  try {
    await t.handles[0]!.run();
    assert.equal([...(await readRing(t.ring, 1))], [1], 'guest signalled');
    // A different worker thread rebuilds guest memory from the descriptor and reads the SAB.
    const seen = await new Promise<number>((resolve, reject) => {
      const w = new Worker(`
        const { parentPort, workerData } = require('node:worker_threads');
        const r = workerData.regions[0];
        const dv = new DataView(r.buffer, r.offset, r.size);
        parentPort.postMessage(dv.getUint32(0x2000, true));`, { eval: true, workerData: t.mem.describe() });
      w.once('message', resolve);
      w.once('error', reject);
    });
    assert.is(seen, 0xcafebabe);
    assert.is(t.mem.writeU32(0x3000, 0x12345678), undefined);
    const out = await readRing(t.ring, 4);
    assert.equal([...out], [0x78, 0x56, 0x34, 0x12], 'guest read the host write');
    const exit = await t.handles[0]!.exited;
    assert.is(exit.exitKind, VCPU_EXIT_KIND.HLT);
    assert.ok(t.handles[0]!.exitCounts().ioOut >= 2);
  } finally {
    await t.close();
  }
});

// vCPU0 raises flag A then waits for B; vCPU1 waits for A then raises B. Only two vCPUs
// running at the same time get both to their `out` (one at a time would spin forever).
const HANDSHAKE_0 = [
  0xc6, 0x06, 0x00, 0x40, 0x01, // mov byte [0x4000], 1
  0x80, 0x3e, 0x01, 0x40, 0x01, // l: cmp byte [0x4001], 1
  0x75, 0xf9, //                   jne l
  0xb0, 0xa0, 0xe6, 0xe9, //       mov al, 0xa0 ; out 0xe9, al
  0xf4,
];
const HANDSHAKE_1 = [
  0x80, 0x3e, 0x00, 0x40, 0x01, // l: cmp byte [0x4000], 1
  0x75, 0xf9, //                   jne l
  0xc6, 0x06, 0x01, 0x40, 0x01, // mov byte [0x4001], 1
  0xb0, 0xa1, 0xe6, 0xe9, //       mov al, 0xa1 ; out 0xe9, al
  0xf4,
];

test('two vCPU workers run at once in one VM', async () => {
  const t = await tinyVm([{ addr: 0x1000, code: HANDSHAKE_0 }, { addr: 0x1100, code: HANDSHAKE_1 }]);
  try {
    await Promise.all(t.handles.map((h) => h.run()));
    const out = await readRing(t.ring, 2);
    assert.equal([...out].sort(), [0xa0, 0xa1]);
    const exits = await Promise.all(t.handles.map((h) => h.exited));
    assert.equal(exits.map((e) => e.exitKind), [VCPU_EXIT_KIND.HLT, VCPU_EXIT_KIND.HLT]);
  } finally {
    await t.close();
  }
});

test('pre-started vCPU actors take a VM and run it; unused ones drain', async () => {
  prewarmActors('vcpu', 3);
  assert.is(warmActorCount('vcpu'), 3);
  const t = await tinyVm([{ addr: 0x1000, code: HANDSHAKE_0 }, { addr: 0x1100, code: HANDSHAKE_1 }]);
  try {
    assert.is(warmActorCount('vcpu'), 1, 'both vCPUs went to pre-started workers');
    await Promise.all(t.handles.map((h) => h.run()));
    assert.equal([...(await readRing(t.ring, 2))].sort(), [0xa0, 0xa1]);
    const exits = await Promise.all(t.handles.map((h) => h.exited));
    assert.equal(exits.map((e) => e.exitKind), [VCPU_EXIT_KIND.HLT, VCPU_EXIT_KIND.HLT]);
  } finally {
    await t.close();
  }
  await drainActorPool();
  assert.is(warmActorCount('vcpu'), 0);
});

// Two loops that never leave the guest (no IO, MMIO or HLT): each counts in its own dword.
const COUNT_AT_2000 = [0x66, 0xff, 0x06, 0x00, 0x20, 0xeb, 0xf9]; // l: inc dword [0x2000] ; jmp l
const COUNT_AT_2004 = [0x66, 0xff, 0x06, 0x04, 0x20, 0xeb, 0xf9]; // l: inc dword [0x2004] ; jmp l

test('pause kicks a vCPU out of KVM_RUN: its guest loop stops while a sibling counts on; resume restarts it (20 rounds)', async () => {
  const t = await tinyVm([{ addr: 0x1000, code: COUNT_AT_2000 }, { addr: 0x1100, code: COUNT_AT_2004 }]);
  const [h, sibling] = [t.handles[0]!, t.handles[1]!];
  const mine = (): number => must(t.mem.readU32(0x2000));
  const theirs = (): number => must(t.mem.readU32(0x2004));
  const noExits = { ioIn: 0, ioOut: 0, mmioRead: 0, mmioWrite: 0, other: 0 };
  try {
    await Promise.all(t.handles.map((x) => x.run()));
    const lat: number[] = [];
    for (let i = 0; i < 20; i++) {
      // The counter moving means guest code runs, i.e. the worker is inside KVM_RUN, and a
      // loop without exits keeps it there until something interrupts the ioctl.
      const before = mine();
      await pollUntil(() => mine() !== before, 10_000, `round ${i}: the running vCPU's counter did not advance`);
      const s = performance.now();
      await h.pause(10_000); // a lost kick shows up as this rejection
      lat.push(performance.now() - s);
      assert.is(h.state, VCPU_STATE.PAUSED, `round ${i}: paused`);
      // Exactly one interrupted KVM_RUN per pause and no other exit: the kick (signal, or
      // immediate_exit; src/kvm/kick.ts) is what ended KVM_RUN.
      assert.equal(h.exitCounts(), { ...noExits, intr: i + 1 }, `round ${i}: exits after the kick`);
      // Out of the guest for good: while the sibling runs a million more iterations of the
      // same loop, this vCPU's counter does not move.
      const frozen = mine();
      const ref = theirs();
      await pollUntil(() => theirs() - ref >= 1_000_000, 30_000, `round ${i}: the sibling vCPU stopped counting while the other was paused`);
      assert.is(mine(), frozen, `round ${i}: the paused vCPU ran guest code`);
      await h.run();
    }
    assert.equal(sibling.exitCounts(), { ...noExits, intr: 0 }, 'the sibling was never kicked and never left KVM_RUN');
    lat.sort((a, b) => a - b);
    console.log(`\n    kick → paused latency over 20 kicks: min ${lat[0]!.toFixed(2)} ms, median ${lat[10]!.toFixed(2)} ms, max ${lat[19]!.toFixed(2)} ms`);
  } finally {
    await t.close();
  }
});

test('a 4.5 GiB guest: both RAM regions registered, pages untouched', () => {
  const rssBefore = process.memoryUsage().rss;
  const kvm = Kvm.open();
  const vm = kvm.createVm();
  const mem = HostGuestMemory.create(ramRanges(4.5 * GiB));
  try {
    assert.equal(mem.hostRegions.map((r) => [r.gpa, r.size]), [[0, MMIO32_MEM_START], [4 * GiB, 1.5 * GiB]]);
    mem.hostRegions.forEach((r, slot) => vm.setUserMemoryRegion(slot, BigInt(r.gpa), BigInt(r.size), r.hostAddr));
    // Touch one byte in each region through the SAB: those pages exist, the rest stay untouched.
    assert.is(mem.writeU8(4 * GiB + 123, 7), undefined);
    assert.is(mem.readU8(4 * GiB + 123), 7);
    assert.is(mem.writeU8(MMIO32_MEM_START - 1, 9), undefined);
    assert.instance(mem.readU8(MMIO32_MEM_START), Error, 'the MMIO gap is not RAM');
    const grown = (process.memoryUsage().rss - rssBefore) / (1 << 20);
    console.log(`\n    4.5 GiB guest layout: RSS grew by ${grown.toFixed(1)} MiB`);
    assert.ok(grown < 64, `RSS grew by ${grown} MiB`);
  } finally {
    vm.close();
    kvm.close();
  }
});

test('a process that exits while a vCPU spins inside the guest still ends (the exit hook kicks it out of KVM_RUN)', async () => {
  const child = spawn(process.execPath, [new URL('../helpers/exit-while-running.js', import.meta.url).pathname], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  const code = await withTimeout(new Promise<number | null>((r) => child.on('exit', (c) => r(c))), 60_000, () => {
    child.kill('SIGKILL');
    return `the process did not end after exiting with a vCPU in KVM_RUN; output: ${out}`;
  });
  assert.match(out, /GUEST_RUNNING/);
  assert.is(code, 0);
});

test.run();
