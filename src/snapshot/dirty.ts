/**
 * The dirty pages of a Diff snapshot: for each RAM region (KVM slot i = region i, as
 * src/vmm/builder.ts registers them), the pages KVM logged as written by the guest
 * (KVM_GET_DIRTY_LOG, memslots with KVM_MEM_LOG_DIRTY_PAGES) OR the pages the VMM's devices
 * wrote (the shared bitmap of src/memory/guest-memory.ts). Firecracker does the same OR in
 * `Vm::get_dirty_bitmap` and `GuestMemoryExtension::dump_dirty` (src/vmm/src/vstate/vm.rs,
 * src/vmm/src/vstate/memory.rs).
 *
 * Both logs are *taken*: KVM clears its log as it returns it, and the device bitmap is cleared
 * word by word with Atomics.exchange, so a bit a device sets concurrently is either in this
 * collection or stays for the next one, never lost. Devices mark after writing (queue.ts
 * `addUsed`), so a collected bit's data is in RAM before the memory file is written.
 *
 * Order for a snapshot while device workers still run (they do on a paused VM: a network
 * frame can arrive): Diff = collect, then write the collected pages; Full = reset, then write
 * everything. Resetting *before* the Full dump means a page a device writes during the dump
 * is marked for the next Diff (Firecracker resets after the dump, safe there because its
 * devices run on the thread that takes the snapshot).
 */
import { KVM_DIRTY_LOG_PAGE_SIZE, dirtyLogBytes } from '../kvm/constants.js';
import * as libc from '../kvm/libc.js';
import { SnapshotMemoryError } from '../errors.js';
import type { HostGuestMemory } from '../memory/host-memory.js';

/** What the collector needs of a VM: KVM_GET_DIRTY_LOG (src/kvm/kvm.ts `VmFd`). */
export interface DirtyLogSource {
  getDirtyLog(slot: number, sizeBytes: number): Uint8Array;
}

/**
 * Takes the dirty pages of every region: one bitmap per region in the layout of
 * KVM_GET_DIRTY_LOG (bit n of byte n/8 = page n), KVM's log OR the device bitmap. `vm` null
 * (no KVM, or a VM whose slots log nothing) gives the device bitmap alone. Both logs are
 * cleared: the next collection starts from this point.
 */
export function collectDirtyPages(vm: DirtyLogSource | null, mem: HostGuestMemory): Uint8Array[] {
  return mem.hostRegions.map((r, slot) => {
    const device = mem.dirtyBitmap(slot);
    // Whole u64 words, so the Int32Array view below always fits.
    const out = new Uint8Array(new ArrayBuffer(dirtyLogBytes(r.size)));
    if (vm) out.set(vm.getDirtyLog(slot, r.size).subarray(0, out.length));
    if (device) {
      const words = new Int32Array(out.buffer, 0, out.length / Int32Array.BYTES_PER_ELEMENT);
      for (let w = 0; w < device.length; w++) {
        if (Atomics.load(device, w) === 0) continue;
        words[w]! |= Atomics.exchange(device, w, 0);
      }
    }
    return out;
  });
}

/**
 * Clears both logs, so the next Diff is relative to now: called just before a Full snapshot
 * is written (module comment).
 */
export function resetDirtyPages(vm: DirtyLogSource | null, mem: HostGuestMemory): void {
  collectDirtyPages(vm, mem);
}

/**
 * The pages of every region that are resident (mincore(2)), in the dirty-log layout: what a
 * Diff takes when track_dirty_pages is off, as Firecracker does (vstate/vm.rs
 * `mincore_bitmap`). A superset of what changed since any earlier snapshot: every page the
 * guest or a device ever touched.
 */
export function residentPages(mem: HostGuestMemory): Uint8Array[] {
  return mem.hostRegions.map((r) => {
    const pages = Math.ceil(r.size / KVM_DIRTY_LOG_PAGE_SIZE);
    const vec = new Uint8Array(pages);
    if (libc.mincore(r.hostAddr, r.size, vec) < 0) {
      const e = libc.errno();
      throw new SnapshotMemoryError('SNAPSHOT_MEMORY_FILE', `Cannot get dirty bitmap: Error calling mincore: ${libc.errnoName(e)} (errno ${e})`);
    }
    const out = new Uint8Array(dirtyLogBytes(r.size));
    for (let p = 0; p < pages; p++) if (vec[p]! & 1) out[p >> 3]! |= 1 << (p & 7);
    return out;
  });
}

/** Number of pages set in a dirty bitmap. */
export function countDirtyPages(bitmap: Uint8Array): number {
  let n = 0;
  for (const b of bitmap) {
    let v = b;
    while (v) {
      n += v & 1;
      v >>>= 1;
    }
  }
  return n;
}
