/**
 * Malicious virtio-blk request chains, as a hostile driver would post them (virtio 1.1 §2.6
 * split virtqueues, §5.2.6 block requests). Each case lays out its descriptors in guest RAM,
 * publishes its head(s) last, and says what a correct device does with them:
 *
 *   rejected    completed with used length 0 and no status byte (Firecracker's answer to an
 *               unparsable request, counted in `execute_fails`)
 *   lost        rejected but not returnable: the head index itself is outside the table, so
 *               no used element can name it (still `execute_fails`)
 *   unsupported completed with VIRTIO_BLK_S_UNSUPP and used length 1 (§5.2.6.1)
 *
 * A case never leaves a valid request behind: the device must touch neither the backing file
 * nor guest RAM for any of them. Cases that break the whole queue (avail.idx jumps) are not
 * here: they end the device (NEEDS_RESET) and run last, in the test itself.
 *
 * HostileDrive is the driver side of one device as the hostile guest (hostile-cpu.ts) drives
 * it under real KVM: rings and requests laid out in guest RAM by the host (MockQueue),
 * register writes and QueueNotify executed by the guest's vCPU, completions read back from
 * the used ring. A probe — one well-formed IN of a sector whose content the test knows —
 * follows every attack, so each case proves the device still serves requests and, because
 * rejected chains are completed as they are popped (before the probe is even read), that
 * everything posted before the probe has been handled.
 */
import {
  VIRTIO_BLK_OUTHDR_SECTOR, VIRTIO_BLK_OUTHDR_SIZE, VIRTIO_BLK_OUTHDR_TYPE, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_STATUS, VIRTQ_DESC_ADDR, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_SIZE,
} from '../../src/devices/virtio/constants.js';
import { must, type GuestMemory } from '../../src/memory/guest-memory.js';
import { MockQueue, mmioDriverInit, mmioDriverOk, type GuestArena, type RawDescriptor, type UsedElement } from './mock-queue.js';
import { OP, RecordingBus, type Command, type HostileCpu } from './hostile-cpu.js';
import { UNTOUCHED } from './block-rig.js';

/** What a case may use to lay out its chains. */
export interface ChainCtx {
  readonly mem: GuestMemory;
  readonly q: MockQueue;
  /** Scratch RAM for headers, buffers and status bytes (fresh per case). */
  readonly arena: GuestArena;
  /** First guest physical address past RAM. */
  readonly ramEnd: number;
  /** This device's virtio-mmio window. */
  readonly mmioBase: number;
  /** Disk capacity in sectors. */
  readonly capacity: bigint;
  /** `n` descriptor indices not used by any chain still in flight. */
  desc(n: number): number[];
}

/** What the device must do with a case's chains. */
export interface Expectation {
  rejected: number[];
  lost: number;
  unsupported: number[];
  /** Status bytes that must keep UNTOUCHED (rejected chains). */
  statusAddrs: number[];
}

export interface ChainAttack {
  readonly name: string;
  post(ctx: ChainCtx): Expectation;
}

const NEXT = VIRTQ_DESC_F_NEXT;
const WRITE = VIRTQ_DESC_F_WRITE;
/** Beyond every RAM and MMIO range, and not a JS number: descriptors get it as a u64. */
const TOP_OF_2_64 = 2n ** 64n - 512n;

/** A descriptor override; `addr` may be a u64 beyond 2^53 (written as two exact halves). */
type DescPatch = Partial<Omit<RawDescriptor, 'addr'>> & { addr?: number | bigint };

interface RequestParts {
  type?: number;
  sector?: bigint;
  hdr?: DescPatch;
  data?: DescPatch | null;
  status?: DescPatch;
  /** Extra descriptors between data and status (a too-long chain). */
  extra?: number;
}

/** The fields of `o` named in `keys` that are set (a u64 `addr` is left to `writeAddr`). */
function pick(o: DescPatch | null | undefined, keys: (keyof RawDescriptor)[]): Partial<RawDescriptor> {
  return Object.fromEntries(keys.filter((k) => o?.[k] !== undefined && typeof o[k] !== 'bigint').map((k) => [k, o![k]]));
}

/** Overwrites descriptor `i`'s address with the exact u64 `addr` (MockQueue takes JS numbers). */
function writeAddr(ctx: ChainCtx, i: number, addr: bigint): void {
  const at = ctx.q.config.descTable + VIRTQ_DESC_SIZE * i + VIRTQ_DESC_ADDR;
  must(ctx.mem.writeU64(at, addr));
}

/**
 * Writes a header → data → status chain (an IN of one sector unless overridden), applies the
 * overrides to single descriptors, links it and returns its indices. Not published.
 */
export function layRequest(ctx: ChainCtx, p: RequestParts = {}): { idx: number[]; statusAddr: number; dataAddr: number } {
  const type = p.type ?? VIRTIO_BLK_T_IN;
  const hdrAddr = ctx.arena.alloc(VIRTIO_BLK_OUTHDR_SIZE);
  must(ctx.mem.writeU32(hdrAddr + VIRTIO_BLK_OUTHDR_TYPE, type));
  must(ctx.mem.writeU64(hdrAddr + VIRTIO_BLK_OUTHDR_SECTOR, p.sector ?? 0n));
  const statusAddr = ctx.arena.alloc(1);
  must(ctx.mem.writeU8(statusAddr, UNTOUCHED));
  const dataAddr = ctx.arena.alloc(512, 512);
  const descs: RawDescriptor[] = [{ addr: hdrAddr, len: VIRTIO_BLK_OUTHDR_SIZE, flags: 0, next: 0, ...pick(p.hdr, ['addr', 'len']) }];
  if (p.data !== null) descs.push({ addr: dataAddr, len: 512, flags: type === VIRTIO_BLK_T_OUT ? 0 : WRITE, next: 0, ...pick(p.data, ['addr', 'len']) });
  for (let i = 0; i < (p.extra ?? 0); i++) descs.push({ addr: ctx.arena.alloc(16), len: 16, flags: 0, next: 0 });
  descs.push({ addr: statusAddr, len: 1, flags: WRITE, next: 0, ...pick(p.status, ['addr', 'len']) });
  const idx = ctx.desc(descs.length);
  const overrides = [p.hdr, ...(p.data === null ? [] : [p.data]), ...Array<undefined>(p.extra ?? 0), p.status];
  descs.forEach((d, k) => {
    const last = k === descs.length - 1;
    // Link in order first; an override's flags / next then replace the link (loops, bad links).
    const linked = { ...d, flags: d.flags | (last ? 0 : NEXT), next: last ? 0 : idx[k + 1]! };
    ctx.q.writeDescriptor(idx[k]!, { ...linked, ...pick(overrides[k], ['flags', 'next']) });
    const addr = overrides[k]?.addr;
    if (typeof addr === 'bigint') writeAddr(ctx, idx[k]!, addr);
  });
  return { idx, statusAddr, dataAddr };
}

/**
 * A case: one request with overrides (and a last `patch` naming its descriptor indices),
 * published, and rejected by the device.
 */
function rejected(name: string, parts: (ctx: ChainCtx) => RequestParts, patch?: (q: MockQueue, idx: number[]) => void): ChainAttack {
  return {
    name,
    post(ctx) {
      const r = layRequest(ctx, parts(ctx));
      patch?.(ctx.q, r.idx);
      ctx.q.publish(r.idx[0]!);
      return { rejected: [r.idx[0]!], lost: 0, unsupported: [], statusAddrs: [r.statusAddr] };
    },
  };
}

/** The data descriptor moved to [addr, addr + len) for an IN (device writes) or OUT (device reads). */
const dataAt = (name: string, where: (ctx: ChainCtx) => { addr: number | bigint; len: number }, type = VIRTIO_BLK_T_IN): ChainAttack =>
  rejected(name, (ctx) => ({ type, data: where(ctx) }));

export const CHAIN_ATTACKS: readonly ChainAttack[] = [
  // Descriptor loops and bad links (§2.6.5.3.1: a chain must not loop; next < queue size).
  rejected('header links to itself', () => ({}), (q, idx) => q.patchDescriptor(idx[0]!, { next: idx[0]! })),
  rejected('data links back to the header (2-cycle)', () => ({}), (q, idx) => q.patchDescriptor(idx[1]!, { next: idx[0]! })),
  {
    name: 'cycle through 250 descriptors',
    post(ctx) {
      const idx = ctx.desc(250);
      const buf = ctx.arena.alloc(16);
      idx.forEach((i, k) => ctx.q.writeDescriptor(i, { addr: buf, len: 16, flags: NEXT, next: idx[(k + 1) % idx.length]! }));
      ctx.q.publish(idx[0]!);
      return { rejected: [idx[0]!], lost: 0, unsupported: [], statusAddrs: [] };
    },
  },
  rejected('header next = queue size', (ctx) => ({ hdr: { flags: NEXT, next: ctx.q.size } })),
  rejected('data next = 0xffff', () => ({ data: { flags: WRITE | NEXT, next: 0xffff } })),
  ...[256, 0xffff].map((head): ChainAttack => ({
    name: `avail ring head ${head} (outside the table)`,
    post(ctx) {
      ctx.q.publish(head);
      return { rejected: [], lost: 1, unsupported: [], statusAddrs: [] };
    },
  })),
  // Indirect descriptors the spec forbids (§2.6.5.3.1), refused whether or not the driver took
  // VIRTIO_F_RING_INDIRECT_DESC: INDIRECT with NEXT, and a table of 4096 entries at 2^64 - 512.
  rejected('INDIRECT flag on the header', (ctx) => ({ hdr: { flags: NEXT | VIRTQ_DESC_F_INDIRECT } })),
  rejected('INDIRECT data descriptor', () => ({ data: { flags: NEXT | WRITE | VIRTQ_DESC_F_INDIRECT } })),
  rejected('INDIRECT table at 2^64 - 512', () => ({ hdr: { addr: TOP_OF_2_64, len: 0x10000, flags: VIRTQ_DESC_F_INDIRECT }, data: null })),
  // Buffers outside guest RAM: every one must be refused before a byte moves.
  dataAt('IN buffer starting at the end of RAM', (ctx) => ({ addr: ctx.ramEnd, len: 512 })),
  dataAt('IN buffer straddling the end of RAM', (ctx) => ({ addr: ctx.ramEnd - 512, len: 1024 })),
  dataAt('OUT buffer straddling the end of RAM', (ctx) => ({ addr: ctx.ramEnd - 512, len: 1024 }), VIRTIO_BLK_T_OUT),
  dataAt('IN buffer in the MMIO gap', () => ({ addr: 0xc000_0000, len: 512 })),
  dataAt("IN buffer over the device's own registers", (ctx) => ({ addr: ctx.mmioBase, len: 512 })),
  dataAt('OUT buffer over the MMIO gap start (0xbfff_fe00 + 1 KiB)', () => ({ addr: 0xbfff_fe00, len: 1024 }), VIRTIO_BLK_T_OUT),
  dataAt('IN buffer on the local APIC page', () => ({ addr: 0xfee0_0000, len: 512 })),
  dataAt('IN buffer at 4 GiB', () => ({ addr: 2 ** 32, len: 512 })),
  dataAt('IN buffer wrapping 2^64', () => ({ addr: TOP_OF_2_64, len: 1024 })),
  dataAt('OUT buffer ending exactly at 2^64', () => ({ addr: TOP_OF_2_64, len: 512 }), VIRTIO_BLK_T_OUT),
  dataAt('IN buffer beyond 2^53', () => ({ addr: 2 ** 53 + 4096, len: 512 })),
  rejected('header outside RAM', (ctx) => ({ hdr: { addr: ctx.ramEnd } })),
  rejected('status byte outside RAM', (ctx) => ({ status: { addr: ctx.ramEnd } })),
  rejected('status byte at 2^64 - 1', () => ({ status: { addr: 2n ** 64n - 1n } })),
  // Huge lengths.
  dataAt('IN of 0xffffffff bytes from address 0', () => ({ addr: 0, len: 0xffff_ffff })),
  rejected('three descriptors of 2 GiB (chain over 2^32 bytes)', () => ({ hdr: { len: 0x8000_0000 }, data: { len: 0x8000_0000 }, status: { len: 0x8000_0000 } })),
  dataAt('IN of 64 MiB inside RAM (past the disk)', () => ({ addr: 0x100_0000, len: 64 << 20 })),
  // Requests the block parser must refuse (§5.2.6).
  rejected('IN at sector = capacity', (ctx) => ({ sector: ctx.capacity })),
  rejected('IN at sector 2^64 - 1', () => ({ sector: 2n ** 64n - 1n })),
  rejected('IN of 2 sectors at the last sector', (ctx) => ({ sector: ctx.capacity - 1n, data: { len: 1024 } })),
  rejected('IN of 100 bytes', () => ({ data: { len: 100 } })),
  rejected('IN of 0 bytes', () => ({ data: { len: 0 } })),
  rejected('device-writable header', () => ({ hdr: { flags: NEXT | WRITE } })),
  rejected('8-byte header', () => ({ hdr: { len: 8 } })),
  rejected('IN into a device-read-only buffer', () => ({ data: { flags: NEXT } })),
  rejected('OUT from a device-writable buffer', () => ({ type: VIRTIO_BLK_T_OUT, data: { flags: NEXT | WRITE } })),
  rejected('device-read-only status', () => ({ status: { flags: 0 } })),
  rejected('status of 0 bytes', () => ({ status: { len: 0 } })),
  rejected('four descriptors', () => ({ extra: 1 })),
  rejected('IN without a data descriptor', () => ({ data: null })),
  rejected('GET_ID into 8 bytes', () => ({ type: VIRTIO_BLK_T_GET_ID, data: { len: 8 } })),
  {
    name: 'unknown request type 0xdeadbeef',
    post(ctx) {
      const r = layRequest(ctx, { type: 0xdead_beef });
      ctx.q.publish(r.idx[0]!);
      return { rejected: [], lost: 0, unsupported: [r.idx[0]!], statusAddrs: [] };
    },
  },
];

/** Queue size the hostile driver programs (the device's maximum). */
export const HOSTILE_QUEUE_SIZE = 256;
const SECTOR = 512;

export class HostileDrive {
  readonly q: MockQueue;
  readonly bus: RecordingBus;
  /** Probes completed (one-sector reads checked against the backing file's content). */
  probes = 0;
  private nextDesc = 0;

  constructor(
    readonly name: string,
    /** The device's virtio-mmio window. */
    readonly base: number,
    private readonly mem: GuestMemory,
    private readonly cpu: HostileCpu,
    /** Where this drive's rings live in guest RAM. */
    ringBase: number,
    /** The backing file's content at start (what probes must read). */
    readonly disk: Uint8Array,
    readonly ramEnd: number,
  ) {
    this.q = new MockQueue(mem, HOSTILE_QUEUE_SIZE, ringBase);
    this.bus = new RecordingBus(base);
  }

  get capacity(): bigint {
    return BigInt(Math.floor(this.disk.length / SECTOR));
  }

  /** `n` consecutive (wrapping) descriptor indices. */
  desc(n: number): number[] {
    const idx = Array.from({ length: n }, (_, k) => (this.nextDesc + k) % this.q.size);
    this.nextDesc = (this.nextDesc + n) % this.q.size;
    return idx;
  }

  /** The context attack cases lay their chains out with, over a fresh scratch arena. */
  ctx(arena: GuestArena, mmioBase = this.base): ChainCtx {
    return { mem: this.mem, q: this.q, arena, ramEnd: this.ramEnd, mmioBase, capacity: this.capacity, desc: (n) => this.desc(n) };
  }

  /** The full §3.1.1 initialisation (ACK, DRIVER, features, FEATURES_OK, queue, DRIVER_OK); returns the status read back. */
  async init(features: bigint): Promise<number> {
    mmioDriverInit(this.bus, features, [this.q]);
    mmioDriverOk(this.bus);
    await this.cpu.run(this.bus.take());
    return this.status();
  }

  status(): Promise<number> {
    return this.cpu.read32(this.base + VIRTIO_MMIO_STATUS);
  }

  /** QueueNotify for queue 0: matches the ioeventfd's datamatch, so KVM consumes it in the kernel. */
  notifyCmd(queue = 0): Command {
    return { op: OP.W32, addr: this.base + VIRTIO_MMIO_QUEUE_NOTIFY, value: queue };
  }

  /**
   * Publishes a probe behind whatever is already posted, notifies from the guest and waits for
   * the probe's used element. Returns every used element that appeared (the probe's last) and
   * checks the probe: status OK, used length 513, data equal to the disk's sector.
   */
  async probe(arena: GuestArena, ms = 30_000): Promise<UsedElement[]> {
    const sector = this.probes % Number(this.capacity);
    const r = layRequest(this.ctx(arena), { sector: BigInt(sector) });
    const head = r.idx[0]!;
    this.q.publish(head);
    await this.cpu.run([this.notifyCmd()]);
    const seen: UsedElement[] = [];
    const deadline = performance.now() + ms;
    while (!seen.some((u) => u.id === head)) {
      seen.push(...this.q.takeUsed());
      if (performance.now() > deadline) throw new Error(`drive ${this.name}: probe ${head} not completed in ${ms / 1000} s (used so far ${JSON.stringify(seen)})`);
      await new Promise((res) => setTimeout(res, 1));
    }
    const got = Uint8Array.from(this.mem.slice(r.dataAddr, SECTOR) as Uint8Array);
    const want = this.disk.subarray(sector * SECTOR, (sector + 1) * SECTOR);
    const probeUsed = seen[seen.length - 1]!;
    if (probeUsed.id !== head || probeUsed.len !== SECTOR + 1 || must(this.mem.readU8(r.statusAddr)) !== VIRTIO_BLK_S_OK || !Buffer.from(got).equals(want)) {
      throw new Error(`drive ${this.name}: probe of sector ${sector} failed (used ${JSON.stringify(probeUsed)}, status ${must(this.mem.readU8(r.statusAddr))})`);
    }
    this.probes++;
    return seen;
  }
}

/**
 * Checks the used elements a case produced (probe excluded) against its expectation; returns
 * a description of the first mismatch, or '' when the device did exactly what it should.
 */
export function checkOutcome(mem: GuestMemory, used: readonly UsedElement[], e: Expectation): string {
  const want = [...e.rejected.map((id) => ({ id, len: 0 })), ...e.unsupported.map((id) => ({ id, len: 1 }))].sort((x, y) => x.id - y.id);
  const got = [...used].sort((x, y) => x.id - y.id);
  if (JSON.stringify(got) !== JSON.stringify(want)) return `used ring ${JSON.stringify(used)}, expected ${JSON.stringify(want)}`;
  const touched = e.statusAddrs.filter((a) => must(mem.readU8(a)) !== UNTOUCHED);
  if (touched.length) return `status byte(s) written for rejected chains at ${touched.map((a) => `0x${a.toString(16)}`).join(', ')}`;
  return '';
}
