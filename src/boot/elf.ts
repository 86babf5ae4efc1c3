/**
 * ELF64 kernel loader (`vmlinux`), firecracker src/vmm/src/arch/x86_64/mod.rs: PT_LOAD segments are copied to their physical
 * address p_paddr, e_entry must be at least HIMEM_START, and a Xen note of type
 * XEN_ELFNOTE_PHYS32_ENTRY selects PVH boot at the note's address instead of the 64-bit Linux
 * entry. Mirrors linux-loader `src/loader/x86_64/elf/mod.rs` as Firecracker calls it (no
 * kernel offset, highmem start = HIMEM_START).
 *
 * Layouts follow the System V gABI "ELF Header", "Program Header" and "Note Section" chapters
 * (include/uapi/linux/elf.h names). The image is hostile input: every offset and size read from
 * it is bounds-checked against the file before use, and every segment against guest RAM
 * before anything is written.
 *
 * Invariant: `loadElf` either throws a KernelLoaderError having written nothing, or has
 * copied every PT_LOAD segment (file bytes, then zeros up to p_memsz).
 */
import { FIRST_ADDR_PAST_32BITS, HIMEM_START } from '../arch/x86_64/layout.js';
import { KernelLoaderError } from '../errors.js';
import { must, type GuestMemory } from '../memory/guest-memory.js';
import type { LoadedImage } from './types.js';

/** ELF identification (e_ident) indices and values. */
const ELFMAG = [0x7f, 0x45, 0x4c, 0x46] as const; // "\x7fELF"
const SELFMAG = ELFMAG.length;
const EI_CLASS = 4;
const EI_DATA = 5;
const EI_NIDENT = 16;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
/** e_machine for x86_64. */
const EM_X86_64 = 62;

/** Elf64_Ehdr field offsets; sizeof(Elf64_Ehdr) = 64. */
const ELF64_EHDR = { e_machine: 18, e_entry: 24, e_phoff: 32, e_phentsize: 54, e_phnum: 56 } as const;
const ELF64_EHDR_SIZE = 64;
/** Elf64_Phdr field offsets; sizeof(Elf64_Phdr) = 56. */
const ELF64_PHDR = { p_type: 0, p_offset: 8, p_paddr: 24, p_filesz: 32, p_memsz: 40 } as const;
const ELF64_PHDR_SIZE = 56;
/** Program header types. */
const PT_LOAD = 1;
const PT_NOTE = 4;
/** Elf64_Nhdr: u32 n_namesz, n_descsz, n_type; name and desc each padded to 4 bytes. */
const ELF_NOTE_HEADER_SIZE = 12;
const ELF_NOTE_ALIGN = 4;

/** Owner name of Xen notes (xen/include/public/elfnote.h), compared without its NUL. */
const XEN_ELFNOTE_NAME = 'Xen';
/**
 * Xen note type giving the 32-bit PVH entry point (xen/include/public/elfnote.h). Linux emits
 * it from arch/x86/platform/pvh/head.S when built with CONFIG_PVH.
 */
export const XEN_ELFNOTE_PHYS32_ENTRY = 18;

/** One PT_LOAD segment, validated against the file. */
export interface ElfSegment {
  /** Guest physical load address (p_paddr). */
  readonly paddr: number;
  /** File offset and byte count to copy. */
  readonly offset: number;
  readonly filesz: number;
  /** Bytes the segment occupies in memory (>= filesz; the rest is zeroed). */
  readonly memsz: number;
}

/** A parsed, file-validated ELF kernel (not yet checked against guest RAM). */
export interface ElfImage {
  /** e_entry, the 64-bit Linux entry point. */
  readonly entry: number;
  /** The XEN_ELFNOTE_PHYS32_ENTRY address, when the image has one. */
  readonly pvhEntry?: number;
  readonly segments: readonly ElfSegment[];
}

/** True when `bytes` starts with the ELF magic (firecracker src/vmm/src/arch/x86_64/mod.rs: only then is ELF tried). */
export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= SELFMAG && ELFMAG.every((b, i) => bytes[i] === b);
}

/** A u64 as a number, or +Infinity when it is beyond 2^53 (so any range check then fails). */
function u64(view: DataView, off: number): number {
  const v = view.getBigUint64(off, true);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.POSITIVE_INFINITY : Number(v);
}

const hex = (n: number): string => (Number.isFinite(n) ? `0x${n.toString(16)}` : 'beyond 2^53');

/**
 * Parses the ELF header, program headers and notes of a kernel image, checking every
 * structure lies inside the file. Throws KernelLoaderError:
 * KERNEL_LOAD_BAD_MAGIC, _ELF_CLASS, _ELF_ENDIAN, _ELF_MACHINE, _TRUNCATED, _ELF_PHDR,
 * _ENTRY (e_entry or the PVH entry below HIMEM_START), _ELF_NOTE.
 */
export function parseElf(bytes: Uint8Array): ElfImage {
  if (!isElf(bytes)) throw new KernelLoaderError('KERNEL_LOAD_BAD_MAGIC', 'kernel image has no ELF magic');
  if (bytes.length < EI_NIDENT) throw new KernelLoaderError('KERNEL_LOAD_TRUNCATED', `ELF image is ${bytes.length} bytes, shorter than e_ident`);
  if (bytes[EI_CLASS] !== ELFCLASS64) throw new KernelLoaderError('KERNEL_LOAD_ELF_CLASS', `ELF class ${bytes[EI_CLASS]} is not ELFCLASS64`);
  if (bytes[EI_DATA] !== ELFDATA2LSB) throw new KernelLoaderError('KERNEL_LOAD_ELF_ENDIAN', `ELF data encoding ${bytes[EI_DATA]} is not ELFDATA2LSB`);
  if (bytes.length < ELF64_EHDR_SIZE) throw new KernelLoaderError('KERNEL_LOAD_TRUNCATED', `ELF image is ${bytes.length} bytes, shorter than Elf64_Ehdr`);

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const machine = view.getUint16(ELF64_EHDR.e_machine, true);
  if (machine !== EM_X86_64) throw new KernelLoaderError('KERNEL_LOAD_ELF_MACHINE', `ELF machine ${machine} is not EM_X86_64`);

  const phentsize = view.getUint16(ELF64_EHDR.e_phentsize, true);
  const phnum = view.getUint16(ELF64_EHDR.e_phnum, true);
  const phoff = u64(view, ELF64_EHDR.e_phoff);
  if (phentsize !== ELF64_PHDR_SIZE) throw new KernelLoaderError('KERNEL_LOAD_ELF_PHDR', `e_phentsize ${phentsize} is not sizeof(Elf64_Phdr)`);
  if (phnum === 0) throw new KernelLoaderError('KERNEL_LOAD_ELF_PHDR', 'ELF image has no program headers');
  if (phoff < ELF64_EHDR_SIZE) throw new KernelLoaderError('KERNEL_LOAD_ELF_PHDR', `e_phoff ${hex(phoff)} overlaps the ELF header`);
  if (phoff + phnum * ELF64_PHDR_SIZE > bytes.length) {
    throw new KernelLoaderError('KERNEL_LOAD_TRUNCATED', `program header table ${hex(phoff)}+${phnum}x${ELF64_PHDR_SIZE} runs past the end of the file`);
  }

  // linux-loader checks the entry before reading segments; so do we (firecracker src/vmm/src/arch/x86_64/mod.rs).
  const entry = u64(view, ELF64_EHDR.e_entry);
  if (entry < HIMEM_START) throw new KernelLoaderError('KERNEL_LOAD_ENTRY', `ELF entry ${hex(entry)} is below HIMEM_START`);

  // Only PT_LOAD (copied) and PT_NOTE (scanned for the PVH entry) matter to a loader;
  // PT_GNU_STACK, PT_DYNAMIC etc. are skipped. File ranges of both are checked here, once,
  // so loadElf can copy without further bounds checks on the file side.
  const segments: ElfSegment[] = [];
  let pvhEntry: number | undefined;
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * ELF64_PHDR_SIZE;
    const type = view.getUint32(ph + ELF64_PHDR.p_type, true);
    if (type !== PT_LOAD && type !== PT_NOTE) continue;
    const offset = u64(view, ph + ELF64_PHDR.p_offset);
    const filesz = u64(view, ph + ELF64_PHDR.p_filesz);
    if (offset + filesz > bytes.length) {
      throw new KernelLoaderError('KERNEL_LOAD_TRUNCATED', `segment ${i} file range ${hex(offset)}+${hex(filesz)} runs past the end of the file`);
    }
    if (type === PT_NOTE) {
      // The first PHYS32_ENTRY note wins, as in linux-loader; later ones are not scanned.
      pvhEntry ??= findPvhEntry(view, offset, offset + filesz);
      continue;
    }
    const memsz = u64(view, ph + ELF64_PHDR.p_memsz);
    const paddr = u64(view, ph + ELF64_PHDR.p_paddr);
    if (filesz > memsz) throw new KernelLoaderError('KERNEL_LOAD_ELF_PHDR', `segment ${i} p_filesz ${hex(filesz)} exceeds p_memsz ${hex(memsz)}`);
    if (memsz === 0) continue; // occupies nothing; linux-loader skips it too
    segments.push({ paddr, offset, filesz, memsz });
  }
  if (segments.length === 0) throw new KernelLoaderError('KERNEL_LOAD_ELF_PHDR', 'ELF image has no PT_LOAD segment');

  // linux-loader does not bound the PVH entry; Kindling holds it to the same 1 MiB floor as
  // e_entry, since an entry below the kernel's load area cannot be kernel code.
  if (pvhEntry !== undefined && pvhEntry < HIMEM_START) {
    throw new KernelLoaderError('KERNEL_LOAD_ENTRY', `PVH entry ${hex(pvhEntry)} is below HIMEM_START`);
  }
  return pvhEntry === undefined ? { entry, segments } : { entry, pvhEntry, segments };
}

const alignNote = (n: number): number => Math.ceil(n / ELF_NOTE_ALIGN) * ELF_NOTE_ALIGN;

/**
 * Scans the notes in file range [start, end) for the Xen PHYS32_ENTRY note and returns its
 * address. The descriptor is a u32 or u64 by its size (Linux writes `_ASM_PTR`, 8 bytes on
 * x86_64); the address must fit 32 bits, because PVH enters in 32-bit protected mode.
 */
function findPvhEntry(view: DataView, start: number, end: number): number | undefined {
  let pos = start;
  // Fewer than ELF_NOTE_HEADER_SIZE trailing bytes are segment padding, not a note.
  while (pos + ELF_NOTE_HEADER_SIZE <= end) {
    const namesz = view.getUint32(pos, true);
    const descsz = view.getUint32(pos + 4, true);
    const type = view.getUint32(pos + 8, true);
    const nameAt = pos + ELF_NOTE_HEADER_SIZE;
    const descAt = nameAt + alignNote(namesz);
    if (descAt + descsz > end) {
      throw new KernelLoaderError('KERNEL_LOAD_ELF_NOTE', `ELF note at file offset ${hex(pos)} runs past its PT_NOTE segment`);
    }
    // Match type and owner both: note types are per-owner namespaces, and Linux's own notes
    // ("Linux", "GNU") reuse small type numbers.
    if (type === XEN_ELFNOTE_PHYS32_ENTRY && noteName(view, nameAt, namesz) === XEN_ELFNOTE_NAME) {
      let addr: number;
      if (descsz === 4) addr = view.getUint32(descAt, true);
      else if (descsz === 8) addr = u64(view, descAt);
      else throw new KernelLoaderError('KERNEL_LOAD_ELF_NOTE', `XEN_ELFNOTE_PHYS32_ENTRY descriptor is ${descsz} bytes, not 4 or 8`);
      if (addr >= FIRST_ADDR_PAST_32BITS) {
        throw new KernelLoaderError('KERNEL_LOAD_ELF_NOTE', `PVH entry ${hex(addr)} does not fit in 32 bits`);
      }
      return addr;
    }
    pos = descAt + alignNote(descsz);
  }
  return undefined;
}

/** The note owner name, without its terminating NUL. */
function noteName(view: DataView, at: number, namesz: number): string {
  let s = '';
  for (let i = 0; i < namesz; i++) {
    const c = view.getUint8(at + i);
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

/**
 * Loads an ELF64 kernel into guest memory: validates it (parseElf), checks each segment lies
 * at or above HIMEM_START and inside one RAM region (KERNEL_LOAD_ADDRESS), then copies
 * p_filesz bytes to p_paddr and zeroes up to p_memsz. The entry point is PVH when the image
 * has a XEN_ELFNOTE_PHYS32_ENTRY note, else 64-bit Linux at e_entry (firecracker src/vmm/src/arch/x86_64/mod.rs).
 */
export function loadElf(mem: GuestMemory, bytes: Uint8Array): LoadedImage {
  const img = parseElf(bytes);
  let kernelEnd = 0;
  // Validate every segment before writing any, so a refused image leaves memory untouched.
  for (const s of img.segments) {
    if (s.paddr < HIMEM_START) {
      throw new KernelLoaderError('KERNEL_LOAD_ADDRESS', `segment at ${hex(s.paddr)} is below HIMEM_START`);
    }
    if (!mem.contains(s.paddr, s.memsz)) {
      throw new KernelLoaderError('KERNEL_LOAD_ADDRESS', `segment ${hex(s.paddr)}+${hex(s.memsz)} is outside guest RAM`);
    }
    kernelEnd = Math.max(kernelEnd, s.paddr + s.memsz);
  }
  for (const s of img.segments) {
    // must(): contains() above guarantees the range; a failure here is a Kindling bug.
    const dst = must(mem.slice(s.paddr, s.memsz));
    dst.set(bytes.subarray(s.offset, s.offset + s.filesz));
    dst.fill(0, s.filesz);
  }
  const entry = img.pvhEntry === undefined ? { kind: 'linux64' as const, addr: img.entry } : { kind: 'pvh' as const, addr: img.pvhEntry };
  return { format: 'elf', entry, kernelEnd };
}
