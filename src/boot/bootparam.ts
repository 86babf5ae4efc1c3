/**
 * The Linux x86 boot protocol's binary layouts, transcribed once (docs/design.md, Layers) from
 * arch/x86/include/uapi/asm/bootparam.h, arch/x86/include/uapi/asm/setup_data.h and
 * Documentation/arch/x86/{boot.rst,zero-page.rst}. Used by bzimage.ts (reading a kernel's
 * setup header) and zero-page.ts (writing struct boot_params). Firecracker gets the same
 * structs from linux-loader `src/loader_gen/x86_64/bootparam.rs`.
 *
 * Offsets are absolute within struct boot_params, which is also where the setup header sits in
 * a bzImage file: the header starts at 0x1f1 in both (boot.rst "THE REAL-MODE KERNEL HEADER").
 * All fields are little-endian; test/unit/boot-zero-page.test.ts asserts the derived sizes.
 */

/** sizeof(struct boot_params): the zero page is exactly one 4 KiB page. */
export const BOOT_PARAMS_SIZE = 4096;

/**
 * struct boot_params fields Kindling touches (bootparam.h; the comments there give the same
 * offsets). Fields not listed stay zero.
 */
export const BOOT_PARAMS = {
  /** u64, boot protocol 2.14+: physical address of the ACPI RSDP. */
  acpi_rsdp_addr: 0x070,
  /** u32 high halves of ramdisk_image / ramdisk_size / cmd_line_ptr (64-bit loaders). */
  ext_ramdisk_image: 0x0c0,
  ext_ramdisk_size: 0x0c4,
  ext_cmd_line_ptr: 0x0c8,
  /** u8: number of valid entries in e820_table. */
  e820_entries: 0x1e8,
  /** u8: set to a non-zero value by a loader that did not clear boot_params (we do clear). */
  sentinel: 0x1ef,
  /** struct setup_header hdr. */
  hdr: 0x1f1,
  /** struct boot_e820_entry e820_table[E820_MAX_ENTRIES_ZEROPAGE]. */
  e820_table: 0x2d0,
} as const;

/**
 * struct setup_header fields at their boot_params (and bzImage file) offsets, with the
 * boot-protocol version that introduced each (boot.rst "THE REAL-MODE KERNEL HEADER").
 */
export const SETUP_HEADER = {
  setup_sects: 0x1f1, // u8, size of the setup code in 512-byte sectors; 0 means 4
  root_flags: 0x1f2, // u16
  syssize: 0x1f4, // u32, 2.04+: protected-mode code size in 16-byte paragraphs
  ram_size: 0x1f8, // u16, obsolete
  vid_mode: 0x1fa, // u16
  root_dev: 0x1fc, // u16
  boot_flag: 0x1fe, // u16, KERNEL_BOOT_FLAG_MAGIC
  jump: 0x200, // u16, x86 short jump; its second byte bounds the header (0x202 + byte)
  header: 0x202, // u32, KERNEL_HDR_MAGIC "HdrS"
  version: 0x206, // u16, boot protocol version (major << 8 | minor)
  realmode_swtch: 0x208, // u32
  start_sys_seg: 0x20c, // u16, obsolete
  kernel_version: 0x20e, // u16, pointer to a version string
  type_of_loader: 0x210, // u8, boot loader identifier
  loadflags: 0x211, // u8, LOADED_HIGH etc.
  setup_move_size: 0x212, // u16, 2.00+
  code32_start: 0x214, // u32, 2.00+: where the protected-mode kernel is loaded
  ramdisk_image: 0x218, // u32, initrd physical address
  ramdisk_size: 0x21c, // u32, initrd size in bytes
  bootsect_kludge: 0x220, // u32, obsolete
  heap_end_ptr: 0x224, // u16, 2.01+
  ext_loader_ver: 0x226, // u8, 2.02+
  ext_loader_type: 0x227, // u8, 2.02+
  cmd_line_ptr: 0x228, // u32, 2.02+: physical address of the NUL-terminated command line
  initrd_addr_max: 0x22c, // u32, 2.03+
  kernel_alignment: 0x230, // u32, 2.05+
  relocatable_kernel: 0x234, // u8, 2.05+
  min_alignment: 0x235, // u8, 2.10+
  xloadflags: 0x236, // u16, 2.12+: XLF_KERNEL_64 etc.
  cmdline_size: 0x238, // u32, 2.06+
  hardware_subarch: 0x23c, // u32, 2.07+
  hardware_subarch_data: 0x240, // u64, 2.07+
  payload_offset: 0x248, // u32, 2.08+
  payload_length: 0x24c, // u32, 2.08+
  setup_data: 0x250, // u64, 2.09+
  pref_address: 0x258, // u64, 2.10+
  init_size: 0x260, // u32, 2.10+
  handover_offset: 0x264, // u32, 2.11+
  kernel_info_offset: 0x268, // u32, 2.15+
} as const;

/** First byte past struct setup_header (after the u32 kernel_info_offset). */
export const SETUP_HEADER_END = SETUP_HEADER.kernel_info_offset + 4;
/** sizeof(struct setup_header) = 0x7b bytes (packed). */
export const SETUP_HEADER_SIZE = SETUP_HEADER_END - BOOT_PARAMS.hdr;

/** struct boot_e820_entry { u64 addr; u64 size; u32 type; } (packed, 20 bytes). */
export const BOOT_E820_ENTRY = { addr: 0, size: 8, type: 16 } as const;
export const BOOT_E820_ENTRY_SIZE = 20;
/** Capacity of boot_params.e820_table (bootparam.h E820_MAX_ENTRIES_ZEROPAGE). */
export const E820_MAX_ENTRIES_ZEROPAGE = 128;

/** e820 memory types (arch/x86/include/asm/e820/types.h). */
export const E820_RAM = 1;
export const E820_RESERVED = 2;

/** "HdrS", the setup header signature at 0x202 (boot.rst; firecracker KERNEL_HDR_MAGIC). */
export const KERNEL_HDR_MAGIC = 0x5372_6448;
/** boot_flag value that marks a valid boot sector (firecracker KERNEL_BOOT_FLAG_MAGIC). */
export const KERNEL_BOOT_FLAG_MAGIC = 0xaa55;
/** type_of_loader for an unregistered boot loader (boot.rst; firecracker KERNEL_LOADER_OTHER). */
export const KERNEL_LOADER_OTHER = 0xff;
/** kernel_alignment Firecracker writes for ELF kernels (KERNEL_MIN_ALIGNMENT_BYTES, 16 MiB). */
export const KERNEL_MIN_ALIGNMENT_BYTES = 0x0100_0000;

/** loadflags bit 0: the protected-mode code is loaded at 0x100000 (boot.rst). */
export const LOADED_HIGH = 1 << 0;
/** xloadflags bit 0: the kernel has the legacy 64-bit entry point at 0x200 (boot.rst). */
export const XLF_KERNEL_64 = 1 << 0;

/**
 * Oldest boot protocol Kindling accepts: 2.12, the first with xloadflags, as Firecracker
 * requires (firecracker src/vmm/src/arch/x86_64/mod.rs; linux-loader alone accepts 2.00+).
 */
export const BOOT_PROTOCOL_MIN_VERSION = 0x020c;
/** bzImage sector size: setup_sects counts these, plus one for the boot sector. */
export const BZIMAGE_SECTOR_SIZE = 512;
/** setup_sects value to assume when the header says 0 (boot.rst: "If this field is 0, the real value is 4"). */
export const SETUP_SECTS_DEFAULT = 4;
/**
 * Offset of the 64-bit entry point (startup_64) from the start of the loaded protected-mode
 * kernel (boot.rst "64-bit BOOT PROTOCOL": "the start address of loaded 64-bit kernel plus 0x200").
 */
export const STARTUP_64_OFFSET = 0x200;
