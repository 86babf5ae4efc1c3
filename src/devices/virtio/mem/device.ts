/**
 * The virtio-mem device model (virtio 1.2 §5.15; Firecracker src/vmm/src/devices/virtio/mem/
 * device.rs, v1.16; docs/design.md "Memory hotplug"), pure over an injected backend that maps
 * and unmaps KVM slots and discards host memory, so unit tests drive it without KVM.
 *
 * The device owns a region of guest-physical space (`addr`, `region_size`) cut into blocks of
 * `block_size`; the guest plugs and unplugs blocks with requests on one queue, towards the
 * `requested_size` the host sets (PATCH /hotplug/memory, a config interrupt). The host side
 * groups blocks into slots (`slot_size`, a multiple of the block size): a slot with any plugged
 * block is a KVM memory slot, a slot with none is not mapped for the guest at all.
 *
 * - Plug state is one shared byte per block (guest-memory.ts `HotplugGuard`): every thread's
 *   GuestMemory refuses accesses to unplugged blocks, so no device touches them.
 * - Every guest-supplied range is checked (Firecracker `validate_range`): block-aligned address,
 *   nb_blocks ≥ 1, inside [addr, addr + usable_region_size). PLUG must not take plugged_size past
 *   requested_size and needs every block unplugged; UNPLUG needs every block plugged; a
 *   refused request gets VIRTIO_MEM_RESP_ERROR. UNPLUG_ALL unplugs everything and sets
 *   usable_region_size to 0 (as Firecracker; the next larger request grows it again).
 * - Order on plug: slots mapped, then the blocks marked plugged. On unplug: blocks marked
 *   unplugged, emptied slots unmapped, then the memory discarded (Firecracker `update_range`:
 *   the slot goes before the discard so the guest cannot fault the pages back in).
 * - A chain that cannot carry a request (a device-writable request buffer, a read-only or
 *   missing response buffer, one too short, one outside RAM) is used with length 0 and counted
 *   `queue_event_fails` (Firecracker stops processing the queue there; Kindling serves the rest).
 *   Nothing the guest sends makes the model throw.
 */
import { VirtioActivateError, VirtioMemError, VirtqueueError } from '../../../errors.js';
import type { GuestMemory } from '../../../memory/guest-memory.js';
import { hasFeature } from '../constants.js';
import { VIRTIO_INTERRUPT, signalUsed, type VirtioActivation, type VirtioDeviceDescription, type VirtioInterrupt } from '../device.js';
import type { DescriptorChain } from '../queue.js';
import { SingleQueueDevice, type ActiveQueue } from '../single-queue.js';
import { MEM_QUEUE, MemConfig, VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE, memDescription } from './config.js';
import { MemMetrics, type MemCounter, type MemLatencyMetric } from './metrics.js';
import {
  VIRTIO_MEM_REQ_SIZE, VIRTIO_MEM_RESP_ACK, VIRTIO_MEM_RESP_ERROR, VIRTIO_MEM_RESP_SIZE, VIRTIO_MEM_STATE_MIXED, VIRTIO_MEM_STATE_PLUGGED,
  VIRTIO_MEM_STATE_UNPLUGGED, encodeMemResponse, parseMemRequest, type MemResponse, type RequestedRange,
} from './request.js';

/** What the model asks of the host. */
export interface MemBackend {
  /** Maps hotplug slot `index` into the guest (true) or removes it (false); throws when KVM refuses. */
  setSlot(index: number, mapped: boolean): void;
  /** Releases the host memory of [gpa, gpa + len) (whole blocks); false when the host refused. */
  discard(gpa: number, len: number): boolean;
}

export interface MemDeviceOptions {
  /** The device's config (region, block size), shared with the vCPU threads. */
  config: MemConfig;
  /** Slot size in bytes: a multiple of the block size dividing the region size. */
  slotSize: number;
  /** One byte per block (HotplugGuard.plugged), 1 = plugged. */
  plugged: Uint8Array;
  backend: MemBackend;
  metrics?: MemMetrics;
  /** Clock for the latency aggregates (ms); default performance.now. */
  now?: () => number;
}

/** The status GET /hotplug/memory reports (Firecracker `VirtioMemStatus`, bytes here). */
export interface MemStatus {
  regionSize: number;
  blockSize: number;
  slotSize: number;
  pluggedSize: number;
  requestedSize: number;
}

/** The state of a range of blocks (Firecracker `BlockRangeState`). */
type RangeState = typeof VIRTIO_MEM_STATE_PLUGGED | typeof VIRTIO_MEM_STATE_UNPLUGGED | typeof VIRTIO_MEM_STATE_MIXED;

export class VirtioMemDevice extends SingleQueueDevice {
  override readonly description: VirtioDeviceDescription;
  override readonly metrics: MemMetrics;
  readonly config: MemConfig;
  private readonly slotSize: number;
  private readonly plugged: Uint8Array;
  private readonly backend: MemBackend;
  private readonly now: () => number;
  /** Which slots are mapped in KVM now. */
  private readonly mapped: boolean[];

  constructor(o: MemDeviceOptions) {
    // Resettable: §5.15.5.2, a reset leaves every block as it is.
    super('virtio-mem', true);
    this.config = o.config;
    this.slotSize = o.slotSize;
    this.plugged = o.plugged;
    this.backend = o.backend;
    this.metrics = o.metrics ?? new MemMetrics();
    this.now = o.now ?? (() => performance.now());
    this.description = memDescription(o.config);
    const c = o.config.get();
    this.mapped = Array.from({ length: Math.ceil(c.regionSize / o.slotSize) }, (_, i) => this.slotState(i) !== VIRTIO_MEM_STATE_UNPLUGGED);
  }

  /**
   * Takes the queue; refuses a driver that did not ack VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE
   * (Firecracker: RequiredFeatureNotAcked), as such a driver may read unplugged memory.
   */
  override activate(mem: GuestMemory, interrupt: VirtioInterrupt, activation: VirtioActivation): VirtioActivateError | undefined {
    if (!hasFeature(activation.ackedFeatures, VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE)) {
      this.metrics.inc('activate_fails');
      interrupt.needsReset();
      return new VirtioActivateError('virtio-mem: VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE feature not acknowledged by guest');
    }
    return super.activate(mem, interrupt, activation);
  }

  override onQueueNotify(queue: number): void {
    if (queue === MEM_QUEUE) this.processQueue();
  }

  /** The status GET /hotplug/memory reports. */
  status(): MemStatus {
    const c = this.config.get();
    return { regionSize: c.regionSize, blockSize: c.blockSize, slotSize: this.slotSize, pluggedSize: c.pluggedSize, requestedSize: c.requestedSize };
  }

  /**
   * PATCH /hotplug/memory (Firecracker `update_requested_size`): a new target, told to the
   * driver with a config interrupt. usable_region_size grows (to whole slots) when the target
   * needs it and never shrinks here.
   */
  setRequestedSize(bytes: number): void {
    const a = this.active;
    if (!a) throw new VirtioMemError('VIRTIO_MEM_NOT_ACTIVE', 'Device is not active');
    const c = this.config.get();
    if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes % c.blockSize !== 0 || bytes > c.regionSize) {
      throw new VirtioMemError('VIRTIO_MEM_INVALID_SIZE', `Size ${bytes} is invalid: it must be a multiple of block size and less than the total size`);
    }
    if (c.usableRegionSize < bytes) this.config.set({ usableRegionSize: Math.ceil(bytes / this.slotSize) * this.slotSize });
    this.config.set({ requestedSize: bytes });
    a.interrupt.trigger(VIRTIO_INTERRUPT.CONFIG);
  }

  /** Serves every posted request (Firecracker `process_mem_queue`). */
  processQueue(): void {
    const a = this.active;
    if (!a || a.broken) return;
    this.metrics.inc('queue_event_count');
    const q = a.queue;
    let used = false;
    for (;;) {
      const chain = q.pop();
      if (chain === null) break;
      if (chain instanceof VirtqueueError) {
        if (q.broken) {
          a.broken = true;
          this.metrics.inc('queue_event_fails');
          a.interrupt.needsReset();
          return;
        }
        this.badChain();
        if (chain.head !== undefined) used = q.addUsed(chain.head, 0) === undefined || used;
        continue;
      }
      used = this.serve(a, chain) || used;
    }
    if (used) signalUsed(q, a.interrupt);
  }

  /** One chain: parse, handle, write the response; true when it went to the used ring. */
  private serve(a: ActiveQueue, chain: DescriptorChain): boolean {
    const [reqDesc, respDesc] = chain.descriptors;
    const reqBytes = reqDesc && !reqDesc.writable && reqDesc.len >= VIRTIO_MEM_REQ_SIZE ? a.mem.slice(reqDesc.addr, VIRTIO_MEM_REQ_SIZE) : undefined;
    const respView = respDesc && respDesc.writable && respDesc.len >= VIRTIO_MEM_RESP_SIZE ? a.mem.slice(respDesc.addr, VIRTIO_MEM_RESP_SIZE) : undefined;
    if (!(reqBytes instanceof Uint8Array) || !(respView instanceof Uint8Array)) {
      this.badChain();
      return a.queue.addUsed(chain.head, 0) === undefined;
    }
    const resp = this.handle(parseMemRequest(reqBytes));
    respView.set(encodeMemResponse(resp));
    a.mem.markDirty(respDesc!.addr, VIRTIO_MEM_RESP_SIZE);
    return a.queue.addUsed(chain.head, VIRTIO_MEM_RESP_SIZE) === undefined;
  }

  /** Handles one decoded request (Firecracker `handle_*_request`), counting it. */
  handle(req: ReturnType<typeof parseMemRequest>): MemResponse {
    switch (req.kind) {
      case 'plug':
        return this.timed('plug_count', 'plug_fails', 'plug_agg', () => this.plug(req.range), req.range);
      case 'unplug':
        return this.timed('unplug_count', 'unplug_fails', 'unplug_agg', () => this.unplug(req.range), req.range);
      case 'unplug-all':
        return this.timed('unplug_all_count', 'unplug_all_fails', 'unplug_all_agg', () => this.unplugAll());
      case 'state':
        return this.timed('state_count', 'state_fails', 'state_agg', () => {
          if (!this.validRange(req.range)) return undefined;
          return { type: VIRTIO_MEM_RESP_ACK, state: this.rangeState(req.range) };
        });
      case 'unsupported':
        this.metrics.inc('queue_event_fails');
        return { type: VIRTIO_MEM_RESP_ERROR };
    }
  }

  /** Runs `f` (undefined = refused) with its count, failure count and latency. */
  private timed(count: MemCounter, fails: MemCounter, agg: MemLatencyMetric, f: () => MemResponse | undefined, range?: RequestedRange): MemResponse {
    this.metrics.inc(count);
    const t0 = this.now();
    const r = f();
    this.metrics.recordLatency(agg, Math.round((this.now() - t0) * 1000));
    if (!r) {
      this.metrics.inc(fails);
      return { type: VIRTIO_MEM_RESP_ERROR };
    }
    if (range && count === 'plug_count') this.metrics.inc('plug_bytes', range.nbBlocks * this.config.get().blockSize);
    if (range && count === 'unplug_count') this.metrics.inc('unplug_bytes', range.nbBlocks * this.config.get().blockSize);
    return r;
  }

  private plug(range: RequestedRange): MemResponse | undefined {
    const c = this.config.get();
    if (!this.validRange(range)) return undefined;
    if (c.pluggedSize + range.nbBlocks * c.blockSize > c.requestedSize) return undefined;
    if (this.rangeState(range) !== VIRTIO_MEM_STATE_UNPLUGGED) return undefined;
    return this.update(range, true) ? { type: VIRTIO_MEM_RESP_ACK } : undefined;
  }

  private unplug(range: RequestedRange): MemResponse | undefined {
    if (!this.validRange(range)) return undefined;
    if (this.rangeState(range) !== VIRTIO_MEM_STATE_PLUGGED) return undefined;
    return this.update(range, false) ? { type: VIRTIO_MEM_RESP_ACK } : undefined;
  }

  private unplugAll(): MemResponse | undefined {
    const c = this.config.get();
    if (!this.update({ addr: c.addr, nbBlocks: this.plugged.length }, false)) return undefined;
    this.config.set({ usableRegionSize: 0 });
    return { type: VIRTIO_MEM_RESP_ACK };
  }

  /** Firecracker `validate_range`: aligned, non-empty, inside the usable region. */
  private validRange(r: RequestedRange): boolean {
    const c = this.config.get();
    if (!Number.isSafeInteger(r.addr) || r.addr % c.blockSize !== 0 || r.nbBlocks === 0) return false;
    const start = r.addr - c.addr;
    return start >= 0 && start < c.usableRegionSize && start + r.nbBlocks * c.blockSize <= c.usableRegionSize;
  }

  /** The state of a validated range's blocks. */
  private rangeState(r: RequestedRange): RangeState {
    const c = this.config.get();
    const first = (r.addr - c.addr) / c.blockSize;
    return this.blocksState(first, first + r.nbBlocks);
  }

  private blocksState(first: number, end: number): RangeState {
    let n = 0;
    for (let b = first; b < end; b++) n += Atomics.load(this.plugged, b) === 1 ? 1 : 0;
    if (n === end - first) return VIRTIO_MEM_STATE_PLUGGED;
    return n === 0 ? VIRTIO_MEM_STATE_UNPLUGGED : VIRTIO_MEM_STATE_MIXED;
  }

  /** State of slot `i`'s blocks. */
  private slotState(i: number): RangeState {
    const c = this.config.get();
    const per = this.slotSize / c.blockSize;
    return this.blocksState(i * per, Math.min((i + 1) * per, this.plugged.length));
  }

  /**
   * Plugs or unplugs a validated range (Firecracker `update_range`): block bytes, plugged_size,
   * the KVM slots it touches, and on unplug the discard. False (nothing changed) when a slot
   * could not be mapped.
   */
  private update(r: RequestedRange, plug: boolean): boolean {
    const c = this.config.get();
    const first = (r.addr - c.addr) / c.blockSize;
    const end = first + r.nbBlocks;
    const before = this.blocksState(first, end);
    const per = this.slotSize / c.blockSize;
    const slots: number[] = [];
    for (let s = Math.floor(first / per); s * per < end; s++) slots.push(s);
    let delta = 0;
    if (plug) {
      // Slots first: a plugged block is never visible to devices before the guest can reach it.
      for (const s of slots) {
        if (this.mapped[s]) continue;
        try {
          this.backend.setSlot(s, true);
        } catch {
          this.syncSlots(slots);
          return false;
        }
        this.mapped[s] = true;
      }
      for (let b = first; b < end; b++) delta += Atomics.exchange(this.plugged, b, 1) === 1 ? 0 : 1;
    } else {
      for (let b = first; b < end; b++) delta -= Atomics.exchange(this.plugged, b, 0) === 1 ? 1 : 0;
      this.syncSlots(slots);
    }
    this.config.set({ pluggedSize: c.pluggedSize + delta * c.blockSize });
    if (!plug && before !== VIRTIO_MEM_STATE_UNPLUGGED) {
      // Discarding is not reported to the driver; it is counted (Firecracker logs it).
      if (!this.backend.discard(r.addr, r.nbBlocks * c.blockSize)) this.metrics.inc('unplug_discard_fails');
    }
    return true;
  }

  /** Unmaps every slot of `slots` with no plugged block left (errors only counted: the guest can no longer use them either way). */
  private syncSlots(slots: readonly number[]): void {
    for (const s of slots) {
      if (!this.mapped[s] || this.slotState(s) !== VIRTIO_MEM_STATE_UNPLUGGED) continue;
      try {
        this.backend.setSlot(s, false);
        this.mapped[s] = false;
      } catch {
        this.metrics.inc('unplug_discard_fails');
      }
    }
  }

  private badChain(): void {
    this.metrics.inc('bad_chains');
    this.metrics.inc('queue_event_fails');
  }
}
