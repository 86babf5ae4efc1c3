/**
 * Giving guest RAM back to the host (src/memory/discard.ts), without KVM: on the memfd
 * backing, MADV_REMOVE really frees the shmem pages (the memfd's allocated blocks drop, the
 * bytes read back zero), where MADV_DONTNEED would not; on a private anonymous backing,
 * MADV_DONTNEED frees the private pages.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fstatSync } from 'node:fs';
import { HostGuestMemory } from '../../src/memory/host-memory.js';
import { discardGuestPages, ramBacking } from '../../src/memory/discard.js';
import { must } from '../../src/memory/guest-memory.js';
import * as libc from '../../src/kvm/libc.js';

const MiB = 1024 * 1024;
const allocated = (fd: number): number => fstatSync(fd).blocks * 512;

test('memfd (shared) backing: MADV_REMOVE frees the pages; MADV_DONTNEED alone would not', () => {
  const mem = HostGuestMemory.create([{ gpa: 0, size: 8 * MiB }]);
  try {
    assert.is(ramBacking(mem), 'shared');
    const view = must(mem.slice(2 * MiB, 4 * MiB));
    view.fill(0x5a);
    const filled = allocated(mem.memfd);
    assert.ok(filled >= 4 * MiB, `the fill allocated the memfd (${filled})`);
    // What the balloon must not rely on: dropping this mapping's PTEs leaves the memfd's pages.
    libc.madvise(libc.addressOf(view), view.length, libc.MADV_DONTNEED);
    assert.is(allocated(mem.memfd), filled, 'MADV_DONTNEED on a shared mapping returns nothing');
    assert.is(view[0], 0x5a, 'and the bytes are still there');
    assert.ok(discardGuestPages(view, 'shared'));
    assert.ok(filled - allocated(mem.memfd) >= 4 * MiB, 'MADV_REMOVE punched the hole');
    assert.ok(view.every((b) => b === 0), 'the released pages read back zero');
    assert.ok(discardGuestPages(view.subarray(0, 0), 'shared'), 'an empty view is a no-op');
  } finally {
    mem.close();
  }
});

test('private anonymous backing: MADV_DONTNEED frees the private pages (they read back zero)', () => {
  const mem = HostGuestMemory.anonymous([{ gpa: 0, size: 4 * MiB }]);
  assert.is(ramBacking(mem), 'private');
  const view = must(mem.slice(0, 1 * MiB));
  view.fill(7);
  assert.ok(discardGuestPages(view, 'private'));
  assert.ok(view.every((b) => b === 0));
  assert.not.ok(discardGuestPages(view, 'shared'), 'MADV_REMOVE is refused on a private mapping (reported, not thrown)');
});

test.run();
