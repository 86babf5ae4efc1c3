/**
 * Kindling's error classes. Every error carries a permanent `code` (messages may change,
 * codes never do); the table below is the single list of codes, and test/unit/errors.test.ts
 * fails when a class uses a code that is not in it.
 *
 * Errors cross worker boundaries as `{ code, message, name }` (see `toWire`/`fromWire`),
 * because structured clone drops the prototype chain: actor control replies
 * (src/actors/control-channel.ts) and vCPU exit reports (src/actors/vcpu/protocol.ts).
 */

/** Every code Kindling's errors may carry, with a one-line meaning. Codes are permanent. */
export const ERROR_CODES = {
  KVM_UNAVAILABLE: '/dev/kvm cannot be opened',
  KVM_API_VERSION: 'KVM_GET_API_VERSION is not 12',
  KVM_MISSING_CAPABILITY: 'a KVM capability the VMM needs is absent',
  KVM_IOCTL_FAILED: 'an ioctl on a KVM file descriptor failed',
  UFFD: 'userfaultfd cannot be used for the Uffd memory backend: userfaultfd(2) or a UFFDIO_* ioctl failed, or the page-fault handler at backend_path cannot be reached',
  SYSCALL_FAILED: 'a libc call (mmap, memfd_create, eventfd, ...) failed',
  HOST_IO: 'a host file or socket operation failed; the message is Rust io::Error Display as Firecracker prints it (musl strerror, or a std constant text such as a NUL byte in a path)',
  GUEST_MEMORY_OUT_OF_RANGE: 'a guest physical range is not backed by guest RAM',
  GUEST_MEMORY_LAYOUT: 'a guest memory size or region layout is invalid',
  TAP_INVALID_NAME: 'a TAP interface name is empty, too long for IFNAMSIZ or holds a NUL byte',
  TAP_OPEN_TUN: '/dev/net/tun cannot be opened (missing tun module, no permission)',
  TAP_IFREQ: 'TUNSETIFF refused the interface (it does not exist as a TAP, is busy, or needs privileges)',
  TAP_VNET_HDR: 'TUNSETVNETHDRSZ refused the virtio-net header size',
  TAP_OFFLOAD: 'TUNSETOFFLOAD refused the offload flags the guest acked',
  GUEST_MEMORY_ALLOCATION: 'guest RAM cannot be mapped: the address space (RLIMIT_AS, or its end) cannot hold the configured size, or the memfd cannot be sized',
  IO_URING_UNSUPPORTED: 'io_uring cannot be set up, or the kernel lacks a feature the Async block engine needs (single mmap, READ/WRITE opcodes: Linux 5.10+)',
  VCPU_KICK_FAILED: 'a vCPU thread could not be signalled out of KVM_RUN',
  INTERNAL: 'an unexpected error inside Kindling (a bug)',
  ACTOR_EXITED: 'a control call went to an actor that is stopping or whose worker thread exited before replying',
  KERNEL_LOAD_BAD_MAGIC: 'the kernel image is neither an ELF file nor a bzImage (no HdrS magic)',
  KERNEL_LOAD_ELF_CLASS: 'the ELF kernel is not a 64-bit (ELFCLASS64) image',
  KERNEL_LOAD_ELF_ENDIAN: 'the ELF kernel is not little-endian (ELFDATA2LSB)',
  KERNEL_LOAD_ELF_MACHINE: 'the ELF kernel is not built for x86_64 (EM_X86_64)',
  KERNEL_LOAD_ELF_PHDR: 'the ELF program header table is malformed or has no loadable segment',
  KERNEL_LOAD_ELF_NOTE: 'an ELF note (e.g. the PVH entry note) is malformed',
  KERNEL_LOAD_TRUNCATED: 'the kernel image ends before data its headers point at',
  KERNEL_LOAD_ENTRY: 'the kernel entry point or load address is below HIMEM_START (1 MiB)',
  KERNEL_LOAD_ADDRESS: 'a kernel segment lies below HIMEM_START or outside guest RAM',
  KERNEL_LOAD_READ: 'the kernel image cannot be read at InstanceStart (a directory, or gone since PUT /boot-source)',
  KERNEL_LOAD_BZIMAGE_PROTOCOL: 'the bzImage boot protocol version is older than 2.12',
  KERNEL_LOAD_BZIMAGE_NOT_LOADED_HIGH: 'the bzImage loadflags lack LOADED_HIGH',
  KERNEL_LOAD_BZIMAGE_NOT_64BIT: 'the bzImage xloadflags lack XLF_KERNEL_64',
  INITRD_TOO_LARGE: 'the initrd does not fit between the kernel end and the top of low RAM',
  INITRD_READ: 'the initrd cannot be read at InstanceStart (a directory, or gone since PUT /boot-source)',
  CMDLINE_TOO_LONG: 'the kernel command line exceeds its capacity (2048 bytes including the NUL)',
  CMDLINE_INVALID_CHAR: 'the kernel command line holds a NUL or a non-printable / non-ASCII character',
  CMDLINE_INVALID_PARAM: 'a kernel command line key or value is malformed',
  BOOT_PARAMS_E820_FULL: 'more memory map entries than the zero page e820 table holds (128)',
  CPUID_NORMALIZATION: 'KVM CPUID entries cannot be normalized for a vCPU (missing leaf, unknown vendor, bad topology)',
  CPU_TEMPLATE_HOST: 'the static CPU template does not apply to this host: its CPU vendor or model is not the template\'s',
  CPU_TEMPLATE_APPLY: 'a CPU template modifies a CPUID leaf or an MSR that KVM does not offer the vCPU, or requires a KVM capability the host lacks',
  GUEST_MEMORY_HUGE_PAGES: 'guest RAM in 2 MiB huge pages (huge_pages "2M") cannot be had: no hugetlbfs, or too few free pages in the host\'s pool (/proc/sys/vm/nr_hugepages)',
  MPTABLE_SETUP: 'the MP table cannot be built (vCPU count outside 1..254)',
  ACPI_SETUP: 'the ACPI tables cannot be built (bad device resource, bad vCPU count, or no room in the system region)',
  API_HTTP_PARSE: 'a request on the API socket is not valid HTTP as micro_http parses it (micro_http src/request.rs)',
  API_REQUEST_INVALID: 'an API request has a bad method/path, resource id or body shape (firecracker src/firecracker/src/api_server/parsed_request.rs)',
  API_SOCKET_IN_USE: 'the API socket path already exists or is in use (bind EADDRINUSE)',
  CONFIG_DESERIALIZE: 'a JSON body or config file does not match the resource schema (serde_json error text)',
  CONFIG_INVALID: 'a resource configuration was rejected by validation (Firecracker fault text)',
  VMM_ACTION_FAILED: 'a VMM action failed; the message is the fault_message the API returns',
  BACKEND_UNSUPPORTED: 'the VM backend cannot provide a configured device or feature',
  CLI_ARGUMENT: 'the command line could not be parsed (Firecracker exit code 153)',
  DEVICE_STATE_INVALID: 'a device state buffer is not shared, too small, or holds another device model\'s state',
  VIRTQ_INVALID_CONFIG: 'a virtqueue was built with a size that is not a power of two in 1..32768 (a wiring bug)',
  VIRTQ_RING_OUT_OF_RAM: 'a virtqueue descriptor table, available ring or used ring is not inside guest RAM',
  VIRTQ_AVAIL_INDEX_INVALID: 'the driver moved avail.idx more than the queue size ahead (malicious driver); the queue is broken',
  VIRTQ_DESC_INDEX_OUT_OF_RANGE: 'a descriptor chain head or next index is not below the queue size',
  VIRTQ_DESC_LOOP: 'a descriptor chain revisits a descriptor (a chain longer than the queue size must loop)',
  VIRTQ_DESC_INDIRECT: 'a descriptor has VIRTQ_DESC_F_INDIRECT set although VIRTIO_F_RING_INDIRECT_DESC was not negotiated',
  VIRTQ_INDIRECT_INVALID: 'an indirect descriptor also has NEXT, its table is not 1..queue-size whole descriptors inside guest RAM, or a table entry is itself indirect (virtio 1.1 §2.6.5.3.1)',
  VIRTQ_CHAIN_TOO_LONG: 'a descriptor chain describes more than 2^32 bytes in total (virtio 1.1 §2.6.5)',
  VIRTQ_DESC_OUT_OF_RAM: 'a descriptor buffer (addr, len) is not inside guest RAM',
  VIRTIO_MMIO_QUEUE_NOT_READY: 'at DRIVER_OK a virtio-mmio queue is not marked ready',
  VIRTIO_MMIO_QUEUE_SIZE: 'at DRIVER_OK a virtio-mmio queue size is 0, not a power of two, or above QueueNumMax',
  VIRTIO_MMIO_QUEUE_ALIGNMENT: 'at DRIVER_OK a virtio-mmio ring is misaligned (descriptors 16, avail 2, used 4 bytes)',
  VIRTIO_MMIO_QUEUE_OUT_OF_RAM: 'at DRIVER_OK a virtio-mmio ring does not lie inside guest RAM',
  DEVICE_MANAGER_CREATE: 'the legacy devices cannot be set up at InstanceStart (the serial output file cannot be opened, an eventfd cannot be made)',
  VIRTIO_DEVICE_ACTIVATE: 'a virtio device model could not be activated with the queues the driver set up',
  VIRTIO_BLK_REQ_HEADER_WRITE_ONLY: 'a virtio-blk request header descriptor is device-writable',
  VIRTIO_BLK_REQ_HEADER_TOO_SHORT: 'a virtio-blk request header descriptor is shorter than 16 bytes',
  VIRTIO_BLK_REQ_CHAIN_TOO_SHORT: 'a virtio-blk request chain lacks a data or status descriptor its type needs',
  VIRTIO_BLK_REQ_CHAIN_TOO_LONG: 'a virtio-blk FLUSH, GET_ID or unsupported request chain has more than one data descriptor',
  VIRTIO_BLK_REQ_TOO_MANY_SEGMENTS: 'a virtio-blk IN or OUT request has more data descriptors than seg_max',
  VIRTIO_BLK_REQ_SEGMENT_TOO_LARGE: 'a virtio-blk IN or OUT data descriptor is longer than size_max',
  VIRTIO_BLK_REQ_DATA_READ_ONLY: 'a virtio-blk IN or GET_ID request has a device-read-only data descriptor',
  VIRTIO_BLK_REQ_DATA_WRITE_ONLY: 'a virtio-blk OUT request has a device-write-only data descriptor',
  VIRTIO_BLK_REQ_DATA_EMPTY: 'a virtio-blk IN or OUT request has a zero-length data descriptor',
  VIRTIO_BLK_REQ_DATA_LENGTH: 'a virtio-blk IN or OUT data length is not a multiple of 512 bytes',
  VIRTIO_BLK_REQ_SECTOR_RANGE: 'a virtio-blk IN or OUT request reaches past the end of the disk',
  VIRTIO_BLK_REQ_ID_TOO_SHORT: 'a virtio-blk GET_ID data descriptor is shorter than VIRTIO_BLK_ID_BYTES (20)',
  VIRTIO_BLK_REQ_STATUS_READ_ONLY: 'a virtio-blk request status descriptor is device-read-only',
  VIRTIO_BLK_REQ_STATUS_TOO_SHORT: 'a virtio-blk request status descriptor has length 0',
  VIRTIO_NET_PARAMS: 'virtio-net device parameters are unusable (guest MAC not 6 bytes, MTU outside 68..65535): a wiring bug, the API validates both first',
  VIRTIO_VSOCK_PKT_UNREADABLE_DESC: 'a vsock TX chain holds a device-writable descriptor (a TX packet is device-read-only)',
  VIRTIO_VSOCK_PKT_UNWRITABLE_DESC: 'a vsock RX chain holds a device-read-only descriptor (an RX buffer is device-writable)',
  VIRTIO_VSOCK_PKT_HEADER_TOO_SHORT: 'a vsock chain is shorter than the 44-byte packet header',
  VIRTIO_VSOCK_PKT_LEN_TOO_BIG: 'a vsock TX packet header claims more than MAX_PKT_BUF_SIZE (64 KiB) of data',
  VIRTIO_VSOCK_PKT_CHAIN_TOO_SHORT: 'a vsock TX chain holds fewer data bytes than its header\'s len',
  RATE_LIMITER_CONFIG: 'a token bucket size, one_time_burst or refill_time is not an integer in 0..2^64-1',
  MMDS_CONFIG: 'the MMDS network stack or token authority was given an unusable setting (IPv4 address text, key length, clock): a wiring bug, the API validates first',
  SNAPSHOT_MEMORY_FILE: 'a snapshot memory file cannot be opened, sized, written or synced (the message names the path and the OS error)',
  SNAPSHOT_REBASE: 'a diff memory file cannot be merged onto its base: a file cannot be opened, read or written, or the diff is larger than the base',
  MMDS_DATA_INVALID: 'the MMDS data handed to a network stack is not JSON text (the data store serializes it; a wiring bug)',
  SNAPSHOT_STATE_FORMAT: 'a snapshot state file is damaged, truncated, too large, of another format version, or holds a state this build cannot restore',
  SNAPSHOT_NOT_ALLOWED: 'a snapshot was asked for in a state that cannot give one (vCPUs running, a device that cannot save its state)',
  SNAPSHOT_RESTORE: 'a snapshot cannot be restored on this host (memory file missing or of the wrong size, a KVM state the kernel refuses)',
  BALLOON_NOT_ACTIVE: 'a balloon target or statistics update came before the guest driver activated the device',
  BALLOON_STATS_DISABLED: 'balloon statistics were asked for but stats_polling_interval_s is 0 (no statistics queue)',
  BALLOON_STATS_STATE_CHANGE: 'stats_polling_interval_s was changed between 0 and non-zero after boot (the statistics queue exists or not from activation)',
  BALLOON_TOO_MANY_PAGES: 'the balloon target is larger than guest memory',
  BALLOON_HINTING_DISABLED: 'a free page hinting call on a balloon configured without free_page_hinting',
  VIRTIO_MEM_NOT_ACTIVE: 'a PATCH /hotplug/memory came before the guest driver activated the virtio-mem device',
  VIRTIO_MEM_INVALID_SIZE: 'a requested hotplug size that is not a multiple of the block size or exceeds the total size',
  VIRTIO_MEM_LAYOUT: 'the hotplug region or a pmem window does not fit the device memory past the 64-bit MMIO gap',
  PMEM_BACKING_FILE: 'a pmem backing file cannot be opened or mapped, or is empty',
  SECCOMP_FILTER_INVALID: 'a seccomp filter file is not valid JSON in the seccompiler format Kindling reads, or names an unknown syscall, action, category or argument operator',
  SECCOMP_INSTALL: 'the seccomp filter could not be installed (prctl(PR_SET_NO_NEW_PRIVS) or seccomp(SECCOMP_SET_MODE_FILTER, TSYNC) failed, or a thread could not be synchronized)',
  VHOST_USER_PROTOCOL: 'a vhost-user backend sent a reply that is not a valid vhost-user message (bad header, version, reply flag, request code or payload size) or refused a request (REPLY_ACK non-zero)',
  VHOST_USER_BACKEND: 'the vhost-user backend of a device cannot be reached or used: its socket cannot be connected, it does not answer in time, it closed the connection, it lacks a feature the device needs, or virtiofsd cannot be started',
  JAILER: 'a jailer step failed; the message is Firecracker\'s JailerError Display text',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Base class of all Kindling errors. */
export class KindlingError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** /dev/kvm is missing, unusable, or too old for Kindling. */
export class KvmUnavailableError extends KindlingError {
  constructor(code: 'KVM_UNAVAILABLE' | 'KVM_API_VERSION' | 'KVM_MISSING_CAPABILITY', message: string) {
    super(code, message);
  }
}

/** An ioctl failed; carries the ioctl's name and errno (like node's errnoException). */
export class KvmIoctlError extends KindlingError {
  readonly ioctl: string;
  readonly errno: number;
  constructor(ioctl: string, errno: number, errnoName: string) {
    super('KVM_IOCTL_FAILED', `${ioctl} failed: ${errnoName} (errno ${errno})`);
    this.ioctl = ioctl;
    this.errno = errno;
  }
}

/** A libc call other than a KVM ioctl failed. */
export class SyscallError extends KindlingError {
  readonly syscall: string;
  readonly errno: number;
  constructor(syscall: string, errno: number, errnoName: string) {
    super('SYSCALL_FAILED', `${syscall} failed: ${errnoName} (errno ${errno})`);
    this.syscall = syscall;
    this.errno = errno;
  }
}

/**
 * A userfaultfd step failed (src/memory/uffd.ts): `op` is the syscall or ioctl
 * (`userfaultfd`, `UFFDIO_API`, `UFFDIO_REGISTER`, `UFFDIO_COPY`, `connect(<backend_path>)`, ...),
 * `hint` what the errno means there (EPERM from userfaultfd: the vm.unprivileged_userfaultfd
 * sysctl), appended to the message.
 */
export class UffdError extends KindlingError {
  readonly op: string;
  readonly errno: number;
  constructor(op: string, errno: number, errnoName: string, hint?: string, options?: { cause?: unknown }) {
    super('UFFD', `${op} failed: ${errnoName} (errno ${errno})${hint ? `: ${hint}` : ''}`, options);
    this.op = op;
    this.errno = errno;
  }
}

/** A guest physical range falls (partly) outside guest RAM. Returned, not thrown, on hot paths. */
export class GuestMemoryError extends KindlingError {
  readonly gpa: number;
  readonly length: number;
  constructor(gpa: number, length: number) {
    const where = Number.isSafeInteger(gpa) && gpa >= 0 ? `0x${gpa.toString(16)}` : String(gpa);
    super('GUEST_MEMORY_OUT_OF_RANGE', `guest range ${where}+${length} is not guest RAM`);
    this.gpa = gpa;
    this.length = length;
  }
}

/** A memory size or layout request that cannot be honoured. */
export class GuestMemoryLayoutError extends KindlingError {
  constructor(message: string) {
    super('GUEST_MEMORY_LAYOUT', message);
  }
}

/**
 * Guest RAM cannot be created: Firecracker's `StartMicrovmError::GuestMemory` around a
 * `MemoryError` (src/vmm/src/builder.rs, vstate/memory.rs). `detail` is the `MemoryError` text,
 * e.g. `Cannot create mmap region: Out of memory (os error 12)`; the message adds the
 * `Invalid Memory Configuration: ` prefix InstanceStart's fault_message carries.
 */
export class GuestMemoryAllocationError extends KindlingError {
  readonly detail: string;
  /** GUEST_MEMORY_HUGE_PAGES when the host's huge page pool is what failed (host-memory.ts). */
  constructor(detail: string, options?: { cause?: unknown; code?: 'GUEST_MEMORY_ALLOCATION' | 'GUEST_MEMORY_HUGE_PAGES' }) {
    super(options?.code ?? 'GUEST_MEMORY_ALLOCATION', `Invalid Memory Configuration: ${detail}`, options);
    this.detail = detail;
  }
}

/** The shape in which errors travel between workers. */
export interface WireError {
  code: ErrorCode;
  message: string;
  name: string;
}

/** An error as a WireError: a KindlingError keeps its code, anything else becomes INTERNAL. */
export function toWire(err: unknown): WireError {
  if (err instanceof KindlingError) return { code: err.code, message: err.message, name: err.name };
  const e = err instanceof Error ? err : new Error(String(err));
  return { code: 'INTERNAL', message: e.message, name: e.name };
}

/** The KindlingError a WireError describes (the base class: the subclass does not cross). */
export function fromWire(w: WireError): KindlingError {
  const e = new KindlingError(w.code, w.message);
  e.name = w.name;
  return e;
}

/** Codes of errors raised while loading a kernel image (src/boot/elf.ts, bzimage.ts). */
export type KernelLoaderErrorCode = Extract<ErrorCode, `KERNEL_LOAD_${string}`>;

/**
 * Base of the boot-layer errors (src/boot/): the kernel image, initrd or command line the user
 * supplied cannot be booted. These are user-input errors, not bugs, and are thrown by the
 * loaders (set-up code, never a hot path).
 */
export class BootError extends KindlingError {}

/** The kernel image is malformed or unsupported (firecracker src/vmm/src/arch/x86_64/mod.rs). */
export class KernelLoaderError extends BootError {
  constructor(code: KernelLoaderErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** The initrd cannot be placed in guest RAM. */
export class InitrdError extends BootError {
  constructor(code: Extract<ErrorCode, `INITRD_${string}`>, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** The kernel command line is too long or holds invalid characters or parameters. */
export class CmdlineError extends BootError {
  constructor(code: Extract<ErrorCode, `CMDLINE_${string}`>, message: string) {
    super(code, message);
  }
}

/** The boot parameters (zero page / PVH start info) cannot be encoded. */
export class BootParamsError extends BootError {
  constructor(code: Extract<ErrorCode, `BOOT_PARAMS_${string}`>, message: string) {
    super(code, message);
  }
}

/**
 * A CPU template cannot be used (src/arch/x86_64/cpu-template.ts): a static one on a host of
 * another vendor or model (CPU_TEMPLATE_HOST), or one whose modifiers or KVM capabilities this
 * host's KVM does not offer (CPU_TEMPLATE_APPLY). The message is Firecracker's text.
 */
export class CpuTemplateError extends KindlingError {
  constructor(code: 'CPU_TEMPLATE_HOST' | 'CPU_TEMPLATE_APPLY', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** CPUID normalization failed (firecracker src/vmm/src/arch/x86_64/regs.rs): the entries or the topology asked for are unusable. */
export class CpuidError extends KindlingError {
  constructor(message: string) {
    super('CPUID_NORMALIZATION', message);
  }
}

/** The MP table (firecracker src/vmm/src/arch/x86_64/mptable.rs and src/vmm/src/acpi/) cannot be built. */
export class MptableError extends KindlingError {
  constructor(message: string) {
    super('MPTABLE_SETUP', message);
  }
}

/** The ACPI tables (firecracker src/vmm/src/arch/x86_64/mptable.rs and src/vmm/src/acpi/) cannot be built. */
export class AcpiError extends KindlingError {
  constructor(message: string) {
    super('ACPI_SETUP', message);
  }
}

/**
 * Base of the API/config-layer errors (src/api, src/config, src/cli). `faultMessage` is the exact
 * text Firecracker puts in `{"fault_message": ...}` (or prints), `status` the HTTP status the API
 * answers with (firecracker src/firecracker/src/api_server/parsed_request.rs: 400, except MMDS data-store overflow → 413).
 */
export class ApiLayerError extends KindlingError {
  readonly status: number;
  constructor(
    code: Extract<ErrorCode, `API_${string}` | `CONFIG_${string}` | 'VMM_ACTION_FAILED' | 'BACKEND_UNSUPPORTED' | 'CLI_ARGUMENT'>,
    message: string,
    status = 400,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.status = status;
  }

  /** The text the API returns as `fault_message`. */
  get faultMessage(): string {
    return this.message;
  }
}

/** A shared device-state buffer cannot back the device model it was handed to (a wiring bug). */
export class DeviceStateError extends KindlingError {
  constructor(message: string) {
    super('DEVICE_STATE_INVALID', message);
  }
}

/**
 * A split-virtqueue defect (virtio 1.1 §2.6): the guest driver broke a ring rule, or a queue
 * was wired with a bad size. Guest-caused ones are *returned* by src/devices/virtio/queue.ts,
 * never thrown. `head` is the chain head the device should hand back (used len 0) when the
 * defect is inside one chain; `index` the descriptor at fault.
 */
export class VirtqueueError extends KindlingError {
  readonly head: number | undefined;
  readonly index: number | undefined;
  constructor(code: Extract<ErrorCode, `VIRTQ_${string}`>, message: string, head?: number, index?: number) {
    super(code, message);
    this.head = head;
    this.index = index;
  }
}

/** A virtio-mmio queue failed validation at DRIVER_OK (firecracker src/vmm/src/devices/virtio/transport/mmio.rs); the device gets NEEDS_RESET. */
export class VirtioMmioError extends KindlingError {
  readonly queue: number;
  constructor(code: Extract<ErrorCode, `VIRTIO_MMIO_${string}`>, message: string, queue: number) {
    super(code, message);
    this.queue = queue;
  }
}

/**
 * The legacy devices cannot be set up at InstanceStart: Firecracker's
 * `StartMicrovmError::CreateDeviceManager` (src/vmm/src/builder.rs, device_manager/mod.rs).
 */
export class DeviceManagerError extends KindlingError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('DEVICE_MANAGER_CREATE', message, options);
  }
}

/** A virtio device model refused activation (wrong queue count, rings unusable). */
export class VirtioActivateError extends KindlingError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VIRTIO_DEVICE_ACTIVATE', message, options);
  }
}

/**
 * A malformed virtio-blk request chain (virtio 1.1 §5.2.6). Returned by the parser;
 * the device completes the chain with used len 0 and writes no status (Firecracker's
 * `execute_fails`).
 */
export class BlockRequestError extends KindlingError {
  constructor(code: Extract<ErrorCode, `VIRTIO_BLK_REQ_${string}`>, message: string) {
    super(code, message);
  }
}

/** The net device model was given a guest MAC or MTU the API would have refused (a wiring bug). */
export class NetDeviceParamsError extends KindlingError {
  constructor(message: string) {
    super('VIRTIO_NET_PARAMS', message);
  }
}

/**
 * A malformed vsock packet chain (virtio 1.1 §5.10.6; Firecracker devices/virtio/vsock/
 * packet.rs `VsockError`). Returned by the parser; the device completes the chain with used
 * length 0 and counts it, never throws.
 */
export class VsockPacketError extends KindlingError {
  constructor(code: Extract<ErrorCode, `VIRTIO_VSOCK_PKT_${string}`>, message: string) {
    super(code, message);
  }
}

/** A rate limiter token bucket was configured with a value outside u64 (firecracker src/vmm/src/rate_limiter/mod.rs). */
export class RateLimiterError extends KindlingError {
  constructor(message: string) {
    super('RATE_LIMITER_CONFIG', message);
  }
}

/** io_uring is unavailable here (setup refused, or a needed feature or opcode is missing). */
export class IoUringError extends KindlingError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('IO_URING_UNSUPPORTED', message, options);
  }
}

/** A TAP device could not be opened or configured; the message is Firecracker's `TapError` text. */
export class TapError extends KindlingError {
  constructor(code: 'TAP_INVALID_NAME' | 'TAP_OPEN_TUN' | 'TAP_IFREQ' | 'TAP_VNET_HDR' | 'TAP_OFFLOAD', message: string) {
    super(code, message);
  }
}

/**
 * The MMDS network stack (src/mmds/) was wired with an unusable setting or data text. Never
 * raised for anything the guest sends: guest frames are counted and dropped, not thrown.
 */
export class MmdsError extends KindlingError {
  constructor(code: 'MMDS_CONFIG' | 'MMDS_DATA_INVALID', message: string) {
    super(code, message);
  }
}

/**
 * A snapshot cannot be made or loaded; the message is Firecracker's text after the action's
 * prefix (src/vmm/src/persist.rs, src/vmm/src/snapshot/mod.rs error enums).
 */
export class SnapshotError extends KindlingError {
  constructor(code: 'SNAPSHOT_STATE_FORMAT' | 'SNAPSHOT_NOT_ALLOWED' | 'SNAPSHOT_RESTORE', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Writing a snapshot memory file or rebasing a diff onto its base failed (src/snapshot/). */
export class SnapshotMemoryError extends KindlingError {
  constructor(code: 'SNAPSHOT_MEMORY_FILE' | 'SNAPSHOT_REBASE', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A virtio-mem operation the device refuses; the message is Firecracker's `VirtioMemError` text (devices/virtio/mem/device.rs). */
export class VirtioMemError extends KindlingError {
  constructor(code: 'VIRTIO_MEM_NOT_ACTIVE' | 'VIRTIO_MEM_INVALID_SIZE' | 'VIRTIO_MEM_LAYOUT', message: string) {
    super(code, message);
  }
}

/** A pmem device that cannot be set up; the message is Firecracker's `PmemError` text (devices/virtio/pmem/device.rs). */
export class PmemError extends KindlingError {
  constructor(code: 'PMEM_BACKING_FILE', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/**
 * A balloon operation the device refuses; the message is Firecracker's `BalloonError` text
 * (src/vmm/src/devices/virtio/balloon/mod.rs), after the action's prefix.
 */
export class BalloonError extends KindlingError {
  constructor(
    code: 'BALLOON_NOT_ACTIVE' | 'BALLOON_STATS_DISABLED' | 'BALLOON_STATS_STATE_CHANGE' | 'BALLOON_TOO_MANY_PAGES' | 'BALLOON_HINTING_DISABLED', message: string,
  ) {
    super(code, message);
  }
}

/**
 * A vhost-user backend (virtiofsd for virtio-fs) failed the frontend: its reply does not decode
 * (VHOST_USER_PROTOCOL) or it cannot be reached or used (VHOST_USER_BACKEND). Raised at
 * InstanceStart (the handshake) or in the device worker (DRIVER_OK), never for a guest action.
 */
export class VhostUserError extends KindlingError {
  constructor(code: 'VHOST_USER_PROTOCOL' | 'VHOST_USER_BACKEND', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
