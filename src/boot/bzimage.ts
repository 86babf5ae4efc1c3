/**
 * bzImage kernel loader, per the Linux x86 boot protocol (Documentation/arch/x86/boot.rst) and
 * Firecracker's extra rules (firecracker src/vmm/src/arch/x86_64/mod.rs). The file is: a boot sector plus `setup_sects` sectors
 * of real-mode setup code (the setup header sits at 0x1f1 inside it), then the protected-mode
 * kernel, which is copied to `code32_start`. Kindling never runs the real-mode code: it enters
 * the 64-bit entry point `startup_64`, STARTUP_64_OFFSET bytes into the loaded kernel, with a
 * zero page built from the image's own setup header (zero-page.ts).
 *
 * Checks, in order (each a KernelLoaderError code):
 *   "HdrS" at 0x202                         → KERNEL_LOAD_BAD_MAGIC
 *   header inside the file                  → KERNEL_LOAD_TRUNCATED
 *   version >= 2.12 (BOOT_PROTOCOL_MIN_VERSION) → KERNEL_LOAD_BZIMAGE_PROTOCOL
 *   loadflags & LOADED_HIGH                 → KERNEL_LOAD_BZIMAGE_NOT_LOADED_HIGH
 *   xloadflags & XLF_KERNEL_64              → KERNEL_LOAD_BZIMAGE_NOT_64BIT
 *   a protected-mode part after the setup   → KERNEL_LOAD_TRUNCATED
 *   code32_start >= HIMEM_START             → KERNEL_LOAD_ENTRY
 *   [code32_start, +kernel size) in RAM     → KERNEL_LOAD_ADDRESS
 * Invariant: nothing is written to guest memory unless every check passes.
 */
import { HIMEM_START } from '../arch/x86_64/layout.js';
import { KernelLoaderError } from '../errors.js';
import { must, type GuestMemory } from '../memory/guest-memory.js';
import {
  BOOT_PARAMS,
  BOOT_PROTOCOL_MIN_VERSION,
  BZIMAGE_SECTOR_SIZE,
  KERNEL_HDR_MAGIC,
  LOADED_HIGH,
  SETUP_HEADER,
  SETUP_HEADER_END,
  SETUP_SECTS_DEFAULT,
  STARTUP_64_OFFSET,
  XLF_KERNEL_64,
} from './bootparam.js';
import type { LoadedImage } from './types.js';

/** The setup-header fields the loader decides on, read from a bzImage. */
export interface BzImageHeader {
  /** Boot protocol version, major << 8 | minor (0x020f is 2.15). */
  readonly version: number;
  readonly loadflags: number;
  readonly xloadflags: number;
  /** Real-mode setup sectors after the boot sector (0 in the file already replaced by 4). */
  readonly setupSects: number;
  /** Load address of the protected-mode kernel. */
  readonly code32Start: number;
  /** File offset of the protected-mode kernel: (setupSects + 1) * 512. */
  readonly kernelOffset: number;
  /** Bytes of protected-mode kernel (the rest of the file). */
  readonly kernelSize: number;
  /**
   * A copy of the raw setup header, boot_params offsets [0x1f1, 0x26c): the zero page starts
   * from it (firecracker src/vmm/src/arch/x86_64/mod.rs).
   */
  readonly raw: Uint8Array;
}

/** True when the image carries the "HdrS" setup-header signature at 0x202. */
export function isBzImage(bytes: Uint8Array): boolean {
  if (bytes.length < SETUP_HEADER.header + 4) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return view.getUint32(SETUP_HEADER.header, true) === KERNEL_HDR_MAGIC;
}

const hex = (n: number): string => `0x${n.toString(16)}`;
/** "major.minor" of a boot protocol version word (major in the high byte, boot.rst "version"). */
const protocol = (v: number): string => `${v >> 8}.${v % 256}`;

/**
 * Reads and validates a bzImage's setup header (all checks but the RAM one; see the file
 * comment). Pure: touches no guest memory.
 */
export function parseBzImage(bytes: Uint8Array): BzImageHeader {
  if (!isBzImage(bytes)) throw new KernelLoaderError('KERNEL_LOAD_BAD_MAGIC', 'kernel image is neither ELF nor a bzImage (no HdrS magic at 0x202)');
  // Every field up to kernel_info_offset exists from protocol 2.15; older headers are shorter
  // but still laid out in the file's first sectors, so requiring the full range is safe.
  if (bytes.length < SETUP_HEADER_END) throw new KernelLoaderError('KERNEL_LOAD_TRUNCATED', `bzImage is ${bytes.length} bytes, shorter than its setup header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  // The version gates which header fields exist: xloadflags (read below) only from 2.12, so
  // this check must come first or an older header's bytes there would be misread as flags.
  const version = view.getUint16(SETUP_HEADER.version, true);
  if (version < BOOT_PROTOCOL_MIN_VERSION) {
    throw new KernelLoaderError('KERNEL_LOAD_BZIMAGE_PROTOCOL', `boot protocol ${protocol(version)} is older than ${protocol(BOOT_PROTOCOL_MIN_VERSION)}`);
  }
  // Without LOADED_HIGH the image is a zImage, linked to run at 0x10000, not at code32_start.
  const loadflags = view.getUint8(SETUP_HEADER.loadflags);
  if ((loadflags & LOADED_HIGH) === 0) {
    throw new KernelLoaderError('KERNEL_LOAD_BZIMAGE_NOT_LOADED_HIGH', `loadflags ${hex(loadflags)} lack LOADED_HIGH (a zImage cannot be booted)`);
  }
  // Without XLF_KERNEL_64 there is no startup_64 at STARTUP_64_OFFSET, and Kindling only
  // enters kernels in long mode (firecracker src/vmm/src/arch/x86_64/regs.rs: the Linux path sets up paging and EFER.LMA).
  const xloadflags = view.getUint16(SETUP_HEADER.xloadflags, true);
  if ((xloadflags & XLF_KERNEL_64) === 0) {
    throw new KernelLoaderError('KERNEL_LOAD_BZIMAGE_NOT_64BIT', `xloadflags ${hex(xloadflags)} lack XLF_KERNEL_64 (no 64-bit entry point)`);
  }

  const setupSects = view.getUint8(SETUP_HEADER.setup_sects) || SETUP_SECTS_DEFAULT;
  // +1 for the boot sector itself, which holds the header (boot.rst "LOADING THE REST OF THE KERNEL").
  const kernelOffset = (setupSects + 1) * BZIMAGE_SECTOR_SIZE;
  if (kernelOffset >= bytes.length) {
    throw new KernelLoaderError('KERNEL_LOAD_TRUNCATED', `bzImage ends at ${hex(bytes.length)}, within its ${setupSects} setup sectors`);
  }
  // Firecracker passes no load offset, so the kernel runs where its header asks; a relocatable
  // kernel would accept another address, but matching Firecracker keeps guest layouts equal.
  const code32Start = view.getUint32(SETUP_HEADER.code32_start, true);
  if (code32Start < HIMEM_START) {
    throw new KernelLoaderError('KERNEL_LOAD_ENTRY', `code32_start ${hex(code32Start)} is below HIMEM_START`);
  }
  return {
    version,
    loadflags,
    xloadflags,
    setupSects,
    code32Start,
    kernelOffset,
    kernelSize: bytes.length - kernelOffset,
    raw: bytes.slice(BOOT_PARAMS.hdr, SETUP_HEADER_END),
  };
}

/**
 * Loads a bzImage: copies the protected-mode kernel to code32_start (where Firecracker and
 * linux-loader put it; no relocation) and returns the 64-bit entry, load address +
 * STARTUP_64_OFFSET, with the image's setup header for the zero page. kernelEnd is the end of
 * the compressed image as loaded; the decompressor's own footprint (init_size) is the
 * kernel's business, as in linux-loader.
 */
export function loadBzImage(mem: GuestMemory, bytes: Uint8Array): LoadedImage & { readonly setupHeader: Uint8Array } {
  const hdr = parseBzImage(bytes);
  // The whole protected-mode part must land in one RAM region: it is copied in one piece, and
  // a kernel straddling the MMIO gap could not run anyway.
  if (!mem.contains(hdr.code32Start, hdr.kernelSize)) {
    throw new KernelLoaderError('KERNEL_LOAD_ADDRESS', `kernel ${hex(hdr.code32Start)}+${hex(hdr.kernelSize)} is outside guest RAM`);
  }
  // must(): contains() above guarantees the range; a failure here is a Kindling bug.
  must(mem.write(hdr.code32Start, bytes.subarray(hdr.kernelOffset)));
  return {
    format: 'bzimage',
    entry: { kind: 'linux64', addr: hdr.code32Start + STARTUP_64_OFFSET },
    kernelEnd: hdr.code32Start + hdr.kernelSize,
    setupHeader: hdr.raw,
  };
}
