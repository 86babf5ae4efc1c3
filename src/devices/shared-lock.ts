/**
 * The spin lock shared-state devices use (the same protocol as MmioState's): a word that is
 * 0 free, 1 held; compare-exchange spins, then short sleeps. Critical sections are a handful
 * of slot accesses (plus, for the MSI route table, one KVM ioctl), never a callback into
 * unknown code.
 */
const UNLOCKED = 0;
const LOCKED = 1;
const SPIN_LIMIT = 256;
const LOCK_BACKOFF_MS = 0.05;

export function lockSlot(i32: Int32Array, slot: number): void {
  for (let spin = 0; Atomics.compareExchange(i32, slot, UNLOCKED, LOCKED) !== UNLOCKED; spin++) {
    if (spin >= SPIN_LIMIT) Atomics.wait(i32, slot, LOCKED, LOCK_BACKOFF_MS);
  }
}

export function unlockSlot(i32: Int32Array, slot: number): void {
  Atomics.store(i32, slot, UNLOCKED);
}
