/**
 * virtio-mem model without KVM (docs/design.md "Memory hotplug"): request and response codecs,
 * then a driver-side MockQueue programs an MmioTransport whose DRIVER_OK activates a
 * VirtioMemDevice over guest memory with a hotplug guard, and a recording backend stands in
 * for KVM slots and discards. Small numbers keep it readable: 4 KiB blocks, 4 blocks a slot,
 * a 16-block region.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1, VIRTIO_ID_MEM, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_INT_CONFIG,
  VIRTIO_MMIO_STATUS, featureBit,
} from '../../src/devices/virtio/constants.js';
import { MmioTransport } from '../../src/devices/virtio/mmio.js';
import { MmioInterrupt, MmioState } from '../../src/devices/virtio/mmio-state.js';
import { MEM_FEATURES, MEM_NUM_QUEUES, MemConfig, VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE } from '../../src/devices/virtio/mem/config.js';
import { VirtioMemDevice } from '../../src/devices/virtio/mem/device.js';
import { MEM_FIRECRACKER_COUNTERS, MEM_LATENCY_METRICS, MemMetrics } from '../../src/devices/virtio/mem/metrics.js';
import {
  VIRTIO_MEM_REQ_PLUG, VIRTIO_MEM_REQ_SIZE, VIRTIO_MEM_REQ_STATE, VIRTIO_MEM_REQ_UNPLUG, VIRTIO_MEM_REQ_UNPLUG_ALL, VIRTIO_MEM_RESP_ACK,
  VIRTIO_MEM_RESP_ERROR, VIRTIO_MEM_RESP_SIZE, VIRTIO_MEM_STATE_MIXED, VIRTIO_MEM_STATE_PLUGGED, VIRTIO_MEM_STATE_UNPLUGGED,
  encodeMemRequest, encodeMemResponse, parseMemRequest,
} from '../../src/devices/virtio/mem/request.js';
import { GROUPS } from '../../src/metrics/groups.js';
import { GuestMemory, must, type HotplugGuard } from '../../src/memory/guest-memory.js';
import { GuestMemoryError, VirtioMemError } from '../../src/errors.js';
import { GuestArena, MockQueue, mmioDeviceFeatures, mmioDriverInit, mmioDriverOk, mmioNotify, mmioRead32 } from '../helpers/mock-queue.js';

const RAM = 1 << 20;
const BLOCK = 0x1000;
const PER_SLOT = 4;
const SLOT = BLOCK * PER_SLOT;
const BLOCKS = 16;
const HP = 0x10_0000_0000; // 64 GiB: far from RAM, like the real region past the 64-bit gap
const HP_SIZE = BLOCK * BLOCKS;

function rig(o: { features?: bigint; failSlot?: boolean } = {}) {
  const plugged = new SharedArrayBuffer(BLOCKS);
  const guard: HotplugGuard = { gpa: HP, size: HP_SIZE, blockSize: BLOCK, plugged };
  const mem = new GuestMemory([
    { gpa: 0, size: RAM, bytes: new Uint8Array(RAM) },
    { gpa: HP, size: HP_SIZE, bytes: new Uint8Array(HP_SIZE) },
  ], undefined, guard);
  const slots: [number, boolean][] = [];
  const discards: [number, number][] = [];
  const metrics = new MemMetrics();
  const config = MemConfig.create(HP, HP_SIZE, BLOCK);
  const dev = new VirtioMemDevice({
    config, slotSize: SLOT, plugged: new Uint8Array(plugged), metrics,
    backend: {
      setSlot: (i, m) => {
        if (o.failSlot && m) throw new Error('KVM_SET_USER_MEMORY_REGION failed');
        slots.push([i, m]);
      },
      discard: (gpa, len) => { discards.push([gpa, len]); return true; },
    },
  });
  const state = MmioState.create(MEM_NUM_QUEUES);
  const irqs: number[] = [];
  const transport = new MmioTransport(state, dev.description, {
    onActivate: (a) => { dev.activate(mem, new MmioInterrupt(state, (bit) => irqs.push(bit)), a); },
    onNotify: (q) => dev.onQueueNotify(q),
    interrupt: (bit) => irqs.push(bit),
    onReset: () => dev.reset(),
  }, mem);
  const q = new MockQueue(mem, 64, 0);
  q.notify = () => mmioNotify(transport, 0);
  const arena = new GuestArena(q.end, RAM);
  mmioDriverInit(transport, o.features ?? mmioDeviceFeatures(transport), [q]);
  mmioDriverOk(transport);
  return { mem, dev, metrics, config, transport, state, q, arena, irqs, slots, discards };
}
type Rig = ReturnType<typeof rig>;

/** Sends one request; returns the used length and the response type (and state). */
function send(r: Rig, type: number, addr = 0, nbBlocks = 0): { len: number; type: number; state: number } {
  const req = r.arena.alloc(VIRTIO_MEM_REQ_SIZE);
  const resp = r.arena.alloc(VIRTIO_MEM_RESP_SIZE);
  must(r.mem.write(req, encodeMemRequest(type, { addr, nbBlocks })));
  r.q.addChain([{ addr: req, len: VIRTIO_MEM_REQ_SIZE }, { addr: resp, len: VIRTIO_MEM_RESP_SIZE, write: true }]);
  r.q.kick();
  const used = r.q.takeUsed();
  assert.is(used.length, 1);
  return { len: used[0]!.len, type: must(r.mem.readU16(resp)), state: must(r.mem.readU16(resp + 8)) };
}

const block = (i: number): number => HP + i * BLOCK;

test('request codec: every type, the fields, an unknown type; responses are 10 bytes with the state last', () => {
  assert.equal(parseMemRequest(encodeMemRequest(VIRTIO_MEM_REQ_PLUG, { addr: HP, nbBlocks: 3 })), { kind: 'plug', range: { addr: HP, nbBlocks: 3 } });
  assert.equal(parseMemRequest(encodeMemRequest(VIRTIO_MEM_REQ_UNPLUG, { addr: 8, nbBlocks: 1 })).kind, 'unplug');
  assert.equal(parseMemRequest(encodeMemRequest(VIRTIO_MEM_REQ_UNPLUG_ALL)), { kind: 'unplug-all' });
  assert.equal(parseMemRequest(encodeMemRequest(VIRTIO_MEM_REQ_STATE, { addr: 4096, nbBlocks: 65535 })), { kind: 'state', range: { addr: 4096, nbBlocks: 65535 } });
  assert.equal(parseMemRequest(encodeMemRequest(7)), { kind: 'unsupported', type: 7 });
  // An address no JS number holds exactly is pushed out of every range rather than rounded into one.
  const huge = new Uint8Array(VIRTIO_MEM_REQ_SIZE);
  new DataView(huge.buffer).setBigUint64(8, (1n << 64n) - 1n, true);
  const p = parseMemRequest(huge);
  assert.ok(p.kind === 'plug' && p.range.addr > Number.MAX_SAFE_INTEGER);
  const resp = encodeMemResponse({ type: VIRTIO_MEM_RESP_ACK, state: VIRTIO_MEM_STATE_MIXED });
  assert.is(resp.length, VIRTIO_MEM_RESP_SIZE);
  assert.equal([...resp], [0, 0, 0, 0, 0, 0, 0, 0, VIRTIO_MEM_STATE_MIXED, 0]);
});

test('description: device id 24, UNPLUGGED_INACCESSIBLE offered, the config space as the driver reads it', () => {
  const r = rig();
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_MEM);
  assert.is(mmioDeviceFeatures(r.transport), featureBit(VIRTIO_F_VERSION_1) | MEM_FEATURES);
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG), BLOCK, 'block_size');
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG + 16) + mmioRead32(r.transport, VIRTIO_MMIO_CONFIG + 20) * 2 ** 32, HP, 'addr');
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG + 24), HP_SIZE, 'region_size');
  assert.is(mmioRead32(r.transport, VIRTIO_MMIO_CONFIG + 32), 0, 'usable_region_size');
  assert.ok(r.dev.isActive);
  assert.equal(r.slots, [], 'nothing mapped at start');
});

test('a driver without UNPLUGGED_INACCESSIBLE is refused: NEEDS_RESET, activate_fails', () => {
  const r = rig({ features: featureBit(VIRTIO_F_VERSION_1) });
  assert.not.ok(r.dev.isActive);
  assert.ok(mmioRead32(r.transport, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
  assert.is(r.metrics.count('activate_fails'), 1);
  assert.ok(!(featureBit(VIRTIO_F_VERSION_1) & featureBit(VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE)));
});

test('requested size: config interrupt, usable region grows to whole slots; bad sizes and an inactive device are refused', () => {
  const r = rig();
  r.dev.setRequestedSize(5 * BLOCK);
  assert.ok(r.irqs.includes(VIRTIO_MMIO_INT_CONFIG));
  assert.equal(r.config.get().requestedSize, 5 * BLOCK);
  assert.equal(r.config.get().usableRegionSize, 2 * SLOT, '5 blocks need 2 slots');
  r.dev.setRequestedSize(BLOCK);
  assert.equal(r.config.get().usableRegionSize, 2 * SLOT, 'never shrinks on a smaller target');
  for (const bad of [BLOCK + 1, HP_SIZE + BLOCK, -BLOCK]) {
    try {
      r.dev.setRequestedSize(bad);
      assert.unreachable(`${bad} accepted`);
    } catch (e) {
      assert.instance(e, VirtioMemError);
      assert.is((e as VirtioMemError).code, 'VIRTIO_MEM_INVALID_SIZE');
      assert.match((e as Error).message, /it must be a multiple of block size and less than the total size/);
    }
  }
  const inactive = rig({ features: featureBit(VIRTIO_F_VERSION_1) });
  assert.throws(() => inactive.dev.setRequestedSize(BLOCK), (e: VirtioMemError) => e.code === 'VIRTIO_MEM_NOT_ACTIVE' && e.message === 'Device is not active');
});

test('PLUG maps the slot first and opens exactly the plugged blocks to devices; STATE reports them', () => {
  const r = rig();
  assert.is(send(r, VIRTIO_MEM_REQ_PLUG, block(0), 1).type, VIRTIO_MEM_RESP_ERROR, 'nothing requested yet');
  r.dev.setRequestedSize(6 * BLOCK);
  assert.instance(r.mem.slice(block(1), 8), GuestMemoryError, 'unplugged memory is not guest RAM to devices');
  const ok = send(r, VIRTIO_MEM_REQ_PLUG, block(1), 2);
  assert.equal([ok.len, ok.type], [VIRTIO_MEM_RESP_SIZE, VIRTIO_MEM_RESP_ACK]);
  assert.equal(r.slots, [[0, true]]);
  assert.instance(r.mem.slice(block(1), 2 * BLOCK), Uint8Array);
  assert.instance(r.mem.slice(block(0), 8), GuestMemoryError, 'the block before stays closed');
  assert.instance(r.mem.slice(block(2) + BLOCK - 4, 8), GuestMemoryError, 'an access running into an unplugged block is refused');
  assert.is(r.config.get().pluggedSize, 2 * BLOCK);
  // Another thread's view (a worker rebuilds guest memory from the descriptor) sees the same plug state.
  const other = GuestMemory.fromDescriptor(r.mem.describe());
  assert.instance(other.slice(block(1), 2 * BLOCK), Uint8Array);
  assert.instance(other.slice(block(0), 1), GuestMemoryError);
  assert.equal(send(r, VIRTIO_MEM_REQ_STATE, block(1), 2).state, VIRTIO_MEM_STATE_PLUGGED);
  assert.equal(send(r, VIRTIO_MEM_REQ_STATE, block(0), 4).state, VIRTIO_MEM_STATE_MIXED);
  assert.equal(send(r, VIRTIO_MEM_REQ_STATE, block(4), 4).state, VIRTIO_MEM_STATE_UNPLUGGED);
  // Across a slot boundary: slot 1 is mapped too, slot 0 is not mapped twice.
  assert.is(send(r, VIRTIO_MEM_REQ_PLUG, block(3), 2).type, VIRTIO_MEM_RESP_ACK);
  assert.equal(r.slots, [[0, true], [1, true]]);
  const m = r.metrics.snapshot();
  assert.is(m.plug_count, 3);
  assert.is(m.plug_fails, 1);
  assert.is(m.plug_bytes, 4 * BLOCK);
  assert.is(m.state_count, 3);
});

test('hostile ranges get VIRTIO_MEM_RESP_ERROR and change nothing', () => {
  const r = rig();
  r.dev.setRequestedSize(4 * BLOCK);
  const cases: [string, number, number][] = [
    ['misaligned', block(0) + 8, 1],
    ['no blocks', block(0), 0],
    ['below the region', HP - BLOCK, 1],
    ['past the usable region', block(PER_SLOT), 1],
    ['ending past the usable region', block(PER_SLOT - 1), 2],
    ['more than requested', block(0), PER_SLOT + 1],
    ['an address past 2^53', Number.MAX_SAFE_INTEGER + 1, 1],
  ];
  for (const [what, addr, n] of cases) assert.is(send(r, VIRTIO_MEM_REQ_PLUG, addr, n).type, VIRTIO_MEM_RESP_ERROR, what);
  assert.is(send(r, VIRTIO_MEM_REQ_PLUG, block(0), 2).type, VIRTIO_MEM_RESP_ACK);
  assert.is(send(r, VIRTIO_MEM_REQ_PLUG, block(1), 1).type, VIRTIO_MEM_RESP_ERROR, 'already plugged');
  assert.is(send(r, VIRTIO_MEM_REQ_UNPLUG, block(1), 2).type, VIRTIO_MEM_RESP_ERROR, 'partly unplugged');
  assert.is(send(r, VIRTIO_MEM_REQ_STATE, block(0) + 1, 1).type, VIRTIO_MEM_RESP_ERROR);
  assert.is(send(r, 9).type, VIRTIO_MEM_RESP_ERROR, 'unknown request type');
  assert.is(r.config.get().pluggedSize, 2 * BLOCK);
  assert.equal(r.discards, []);
  assert.is(r.metrics.count('unplug_fails'), 1);
  assert.is(r.metrics.count('state_fails'), 1);
});

test('UNPLUG closes the blocks, unmaps an emptied slot, then discards; UNPLUG_ALL empties the region', () => {
  const r = rig();
  r.dev.setRequestedSize(8 * BLOCK);
  assert.is(send(r, VIRTIO_MEM_REQ_PLUG, block(0), 6).type, VIRTIO_MEM_RESP_ACK);
  must(r.mem.write(block(4), new Uint8Array([1, 2, 3])));
  assert.is(send(r, VIRTIO_MEM_REQ_UNPLUG, block(4), 2).type, VIRTIO_MEM_RESP_ACK);
  assert.equal(r.slots, [[0, true], [1, true], [1, false]], 'slot 1 is empty again');
  assert.equal(r.discards, [[block(4), 2 * BLOCK]]);
  assert.instance(r.mem.slice(block(4), 1), GuestMemoryError);
  assert.is(r.config.get().pluggedSize, 4 * BLOCK);
  assert.is(send(r, VIRTIO_MEM_REQ_UNPLUG, block(0), 1).type, VIRTIO_MEM_RESP_ACK);
  assert.equal(r.slots.at(-1), [1, false], 'slot 0 still holds blocks: stays mapped');
  assert.is(send(r, VIRTIO_MEM_REQ_UNPLUG_ALL).type, VIRTIO_MEM_RESP_ACK);
  assert.equal(r.slots.at(-1), [0, false]);
  assert.equal(r.config.get(), { blockSize: BLOCK, addr: HP, regionSize: HP_SIZE, usableRegionSize: 0, pluggedSize: 0, requestedSize: 8 * BLOCK });
  const m = r.metrics.snapshot();
  assert.is(m.unplug_bytes, 3 * BLOCK);
  assert.is(m.unplug_all_count, 1);
  assert.ok(m.unplug_agg.sum_us >= 0);
});

test('a slot KVM refuses fails the PLUG and plugs nothing', () => {
  const r = rig({ failSlot: true });
  r.dev.setRequestedSize(2 * BLOCK);
  assert.is(send(r, VIRTIO_MEM_REQ_PLUG, block(0), 2).type, VIRTIO_MEM_RESP_ERROR);
  assert.is(r.config.get().pluggedSize, 0);
  assert.instance(r.mem.slice(block(0), 1), GuestMemoryError);
});

test('chains that cannot carry a request are used with 0 and counted; the queue goes on', () => {
  const r = rig();
  r.dev.setRequestedSize(BLOCK);
  const req = r.arena.alloc(VIRTIO_MEM_REQ_SIZE);
  const resp = r.arena.alloc(VIRTIO_MEM_RESP_SIZE);
  must(r.mem.write(req, encodeMemRequest(VIRTIO_MEM_REQ_PLUG, { addr: block(0), nbBlocks: 1 })));
  const chains = [
    [{ addr: req, len: VIRTIO_MEM_REQ_SIZE, write: true }, { addr: resp, len: VIRTIO_MEM_RESP_SIZE, write: true }],
    [{ addr: req, len: VIRTIO_MEM_REQ_SIZE }, { addr: resp, len: VIRTIO_MEM_RESP_SIZE }],
    [{ addr: req, len: VIRTIO_MEM_REQ_SIZE - 1 }, { addr: resp, len: VIRTIO_MEM_RESP_SIZE, write: true }],
    [{ addr: req, len: VIRTIO_MEM_REQ_SIZE }, { addr: resp, len: VIRTIO_MEM_RESP_SIZE - 1, write: true }],
    [{ addr: req, len: VIRTIO_MEM_REQ_SIZE }],
  ];
  for (const c of chains) r.q.addChain(c);
  r.q.kick();
  assert.equal(r.q.takeUsed().map((u) => u.len), [0, 0, 0, 0, 0]);
  assert.is(r.metrics.count('bad_chains'), 5);
  assert.is(r.config.get().pluggedSize, 0, 'none of them plugged anything');
  assert.is(send(r, VIRTIO_MEM_REQ_PLUG, block(0), 1).type, VIRTIO_MEM_RESP_ACK);
});

test('metrics: Firecracker\'s memory_hotplug group by name and order, Kindling\'s own kept apart', () => {
  const group: string[] = GROUPS.memory_hotplug.map((f) => f[0]);
  const ours: string[] = [...MEM_FIRECRACKER_COUNTERS, ...MEM_LATENCY_METRICS];
  assert.equal([...group].sort(), [...ours].sort());
  assert.not.ok(group.includes('bad_chains'));
});

test.run();
