/**
 * Kindling's boot layer (docs/design.md, Layers): loads a kernel, initrd and command line into
 * a GuestMemory and writes the boot information the entry kind needs, then returns the
 * EntryPoint. It never touches KVM, registers or files: callers pass file contents, and the
 * vCPU set-up (firecracker src/vmm/src/arch/x86_64/regs.rs) turns the EntryPoint into registers.
 *
 * Order, as Firecracker's builder (firecracker src/vmm/src/builder.rs and arch/x86_64/mod.rs):
 *   1. loadKernel: kernel image (ELF first, bzImage when the ELF magic is absent), initrd above
 *      it at the top of low RAM, command line at CMDLINE_START;
 *   2. (caller: attach devices, possibly extending the command line and re-writing it with
 *      writeCmdline);
 *   3. writeBootInfo: the zero page (linux64) or the PVH start info (pvh).
 *
 * Errors are thrown as typed BootError subclasses with permanent codes (src/errors.ts):
 * KernelLoaderError KERNEL_LOAD_*, InitrdError INITRD_TOO_LARGE, CmdlineError CMDLINE_*,
 * BootParamsError BOOT_PARAMS_*. A throw from loadKernel may leave a partly loaded image in
 * guest memory; such a VM must not be started.
 */
import type { GuestMemory, RamRange } from '../memory/guest-memory.js';
import { isBzImage, loadBzImage } from './bzimage.js';
import { Cmdline, writeCmdline } from './cmdline.js';
import { isElf, loadElf } from './elf.js';
import { loadInitrd } from './initrd.js';
import { writePvhInfo, type PvhInfo } from './pvh.js';
import type { EntryPoint, GuestPlacement, LoadedImage } from './types.js';
import { writeBootParams, type BootParams } from './zero-page.js';
import { KernelLoaderError } from '../errors.js';

export type { EntryKind, EntryPoint, GuestPlacement, LoadedImage } from './types.js';
export { Cmdline, INIT_ARGS_SEPARATOR, writeCmdline } from './cmdline.js';
export { isElf, loadElf, parseElf, XEN_ELFNOTE_PHYS32_ENTRY, type ElfImage, type ElfSegment } from './elf.js';
export { isBzImage, loadBzImage, parseBzImage, type BzImageHeader } from './bzimage.js';
export { initrdLoadAddr, loadInitrd, lowMemoryEnd } from './initrd.js';
export {
  bootMemoryMap,
  bootParamsFor,
  decodeBootParams,
  encodeBootParams,
  readBootParams,
  writeBootParams,
  type BootParams,
  type E820Entry,
  type LinuxBootConfig,
} from './zero-page.js';
export { readPvhInfo, writePvhInfo, type HvmModlistEntry, type HvmStartInfo, type PvhBootConfig, type PvhInfo } from './pvh.js';

/** Inputs of loadKernel besides the kernel image. */
export interface LoadKernelOptions {
  /** initrd file contents, if any. */
  readonly initrd?: Uint8Array;
  /** The command line: a builder, or user text parsed with Cmdline.parse. */
  readonly cmdline: Cmdline | string;
}

/** Everything loadKernel placed in guest memory; the input of writeBootInfo. */
export interface LoadedKernel extends LoadedImage {
  readonly initrd?: GuestPlacement;
  /** Where the NUL-terminated command line went (CMDLINE_START, size with the NUL). */
  readonly cmdline: GuestPlacement;
}

/**
 * Copies a kernel image into guest memory: ELF when it has the ELF magic, otherwise bzImage;
 * a file that is neither fails with KERNEL_LOAD_BAD_MAGIC (firecracker src/vmm/src/arch/x86_64/mod.rs). An ELF with a bad
 * class, machine or headers is refused outright, not retried as a bzImage.
 */
export function loadKernelImage(mem: GuestMemory, kernel: Uint8Array): LoadedImage {
  // Firecracker falls back to bzImage only on InvalidElfMagicNumber; any other ELF error is
  // final, so a damaged vmlinux reports what is wrong with it, not "no HdrS magic".
  if (isElf(kernel)) return loadElf(mem, kernel);
  if (isBzImage(kernel)) return loadBzImage(mem, kernel);
  throw new KernelLoaderError('KERNEL_LOAD_BAD_MAGIC', 'kernel image is neither ELF (no \\x7fELF) nor a bzImage (no HdrS at 0x202)');
}

/**
 * Loads kernel, initrd and command line (see the file comment, step 1). The command line is
 * validated before anything is written, so a bad one costs no copying.
 */
export function loadKernel(mem: GuestMemory, kernel: Uint8Array, opts: LoadKernelOptions): LoadedKernel {
  // Cheapest check first: a bad command line is found before megabytes are copied.
  const cmdline = typeof opts.cmdline === 'string' ? Cmdline.parse(opts.cmdline) : opts.cmdline;
  const image = loadKernelImage(mem, kernel);
  // The initrd is placed after the kernel because its lower bound is the kernel's end.
  const initrd = opts.initrd ? loadInitrd(mem, opts.initrd, image.kernelEnd) : undefined;
  const placed = writeCmdline(mem, cmdline);
  return { ...image, cmdline: placed, initrd };
}

/** What writeBootInfo wrote: the zero page for linux64, the start info for pvh. */
export type BootInfo = { readonly kind: 'linux64'; readonly bootParams: BootParams } | { readonly kind: 'pvh'; readonly pvh: PvhInfo };

/**
 * Writes the boot information the kernel's entry kind reads (firecracker src/vmm/src/arch/x86_64/mod.rs): the zero page at
 * ZERO_PAGE_START for `linux64`, or hvm_start_info + module list + memory map for `pvh`.
 * `ram` overrides the memory map's RAM ranges (default: the guest memory's regions).
 */
export function writeBootInfo(
  mem: GuestMemory,
  k: Pick<LoadedKernel, 'entry' | 'setupHeader' | 'cmdline' | 'initrd'>,
  ram?: readonly RamRange[],
): BootInfo {
  const entry: EntryPoint = k.entry;
  // ZERO_PAGE_START and MEMMAP_START are the same page: exactly one of the two is written.
  switch (entry.kind) {
    case 'linux64':
      return { kind: 'linux64', bootParams: writeBootParams(mem, { setupHeader: k.setupHeader, cmdline: k.cmdline, initrd: k.initrd, ram }) };
    case 'pvh':
      return { kind: 'pvh', pvh: writePvhInfo(mem, { cmdline: k.cmdline, initrd: k.initrd, ram }) };
    default: {
      const never: never = entry.kind;
      throw new TypeError(`unknown entry kind ${String(never)}`);
    }
  }
}
