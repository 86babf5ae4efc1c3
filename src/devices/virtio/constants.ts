/**
 * Virtio constants, named as the specification and Linux's uapi headers name them
 * (include/uapi/linux/virtio_config.h, virtio_ring.h, virtio_mmio.h, virtio_ids.h,
 * virtio_blk.h, virtio_net.h). Grouped by spec section; section numbers are those of virtio 1.1
 * (https://docs.oasis-open.org/virtio/virtio/v1.1/virtio-v1.1.html), with the 1.2 number
 * where the section moved. Firecracker-specific numbers cite firecracker src/vmm/src/devices/virtio/ (transport/mmio.rs,
 * block/, net/).
 *
 * Every value below is a definition; code compares against these names, never against
 * literals.
 */

// ---------------------------------------------------------------------------------------
// §2.1 Device Status Field (bits of the MMIO Status register).

/** Status value after reset: nothing negotiated yet. */
export const VIRTIO_CONFIG_S_INIT = 0;
/** The guest OS has found the device and recognised it as a valid virtio device. */
export const VIRTIO_CONFIG_S_ACKNOWLEDGE = 1;
/** The guest OS knows how to drive the device. */
export const VIRTIO_CONFIG_S_DRIVER = 2;
/** The driver is set up and ready to drive the device (activation point). */
export const VIRTIO_CONFIG_S_DRIVER_OK = 4;
/** The driver has acknowledged the features it understands; negotiation is complete. */
export const VIRTIO_CONFIG_S_FEATURES_OK = 8;
/** The device hit an error it cannot recover from; the driver must reset it (§2.1.2). */
export const VIRTIO_CONFIG_S_NEEDS_RESET = 0x40;
/** The driver gave up on the device. Latched until reset. */
export const VIRTIO_CONFIG_S_FAILED = 0x80;

// ---------------------------------------------------------------------------------------
// §6 Reserved Feature Bits (bit numbers; a feature set is a bigint bitmap of 64 bits).

/** Descriptors may have VIRTQ_DESC_F_INDIRECT (§2.6.5.3). Offered by virtio-blk and virtio-net. */
export const VIRTIO_F_RING_INDIRECT_DESC = 28;
/** used_event / avail_event notification suppression (§2.6.7, §2.6.10). 1.2: VIRTIO_F_EVENT_IDX. */
export const VIRTIO_F_RING_EVENT_IDX = 29;
/** The device is a virtio 1.x (non-legacy) device; page 1 bit 0 of DeviceFeatures. */
export const VIRTIO_F_VERSION_1 = 32;
/** The device sits behind an IOMMU / platform access restrictions. Not offered. */
export const VIRTIO_F_ACCESS_PLATFORM = 33;
/** The packed virtqueue layout (§2.7). Not offered: Kindling implements split rings only. */
export const VIRTIO_F_RING_PACKED = 34;
/** Buffers are used in the order they are made available. Not offered. */
export const VIRTIO_F_IN_ORDER = 35;
/** QueueNotify writes carry extra data. Not offered (ioeventfd datamatch is the queue index). */
export const VIRTIO_F_NOTIFICATION_DATA = 38;

/** Number of feature bits a DeviceFeatures / DriverFeatures page holds (§4.2.2). */
export const VIRTIO_FEATURES_PAGE_BITS = 32;
/** Feature pages Kindling knows (bits 0..63); pages beyond read as zero and cannot be acked. */
export const VIRTIO_FEATURES_PAGES = 2;

// ---------------------------------------------------------------------------------------
// §2.6 Split Virtqueues: layout, flags, alignment.

/** Largest queue size a split virtqueue may have (§2.6: "Queue Size ... maximum 32768"). */
export const VIRTQ_MAX_SIZE = 32768;
/** Required alignment of the descriptor table, bytes (§2.6 table "Virtqueue Part Alignment"). */
export const VIRTQ_DESC_ALIGN = 16;
/** Required alignment of the available ring (driver area), bytes. */
export const VIRTQ_AVAIL_ALIGN = 2;
/** Required alignment of the used ring (device area), bytes. */
export const VIRTQ_USED_ALIGN = 4;

/** §2.6.5 `struct virtq_desc` is 16 bytes: addr le64, len le32, flags le16, next le16. */
export const VIRTQ_DESC_SIZE = 16;
/** Offset of `addr` (le64) in a descriptor. */
export const VIRTQ_DESC_ADDR = 0;
/** Offset of `len` (le32) in a descriptor. */
export const VIRTQ_DESC_LEN = 8;
/** Offset of `flags` (le16) in a descriptor. */
export const VIRTQ_DESC_FLAGS = 12;
/** Offset of `next` (le16) in a descriptor. */
export const VIRTQ_DESC_NEXT = 14;

/** This descriptor continues via the `next` field. */
export const VIRTQ_DESC_F_NEXT = 1;
/** The buffer is device write-only (otherwise device read-only). */
export const VIRTQ_DESC_F_WRITE = 2;
/** The buffer holds a table of indirect descriptors (§2.6.5.3). */
export const VIRTQ_DESC_F_INDIRECT = 4;

/** §2.6.6 `struct virtq_avail`: offset of `flags` (le16). Same layout for the used ring header. */
export const VIRTQ_RING_FLAGS = 0;
/** Offset of `idx` (le16) in the available and the used ring. */
export const VIRTQ_RING_IDX = 2;
/** Offset of `ring[]` in the available and the used ring. */
export const VIRTQ_RING_ENTRIES = 4;
/** Bytes per available-ring entry (le16 descriptor head index). */
export const VIRTQ_AVAIL_ELEM_SIZE = 2;
/** §2.6.8 `struct virtq_used_elem` is 8 bytes: id le32, len le32. */
export const VIRTQ_USED_ELEM_SIZE = 8;
/** Offset of `id` in a used element. */
export const VIRTQ_USED_ELEM_ID = 0;
/** Offset of `len` in a used element. */
export const VIRTQ_USED_ELEM_LEN = 4;
/** Bytes of the trailing `used_event` / `avail_event` field (le16, present with EVENT_IDX). */
export const VIRTQ_EVENT_SIZE = 2;

/** Avail ring flag: the driver asks for no used-buffer notifications (without EVENT_IDX). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** Used ring flag: the device asks for no available-buffer notifications (without EVENT_IDX). */
export const VIRTQ_USED_F_NO_NOTIFY = 1;

/** Ring indices are free-running 16-bit counters (§2.6.6: "idx ... wraps naturally"). */
export const VIRTQ_IDX_MASK = 0xffff;
/** Ring indices count modulo this value. */
export const VIRTQ_IDX_MODULUS = 0x10000;
/** The driver MUST NOT add a chain longer than 2^32 bytes in total (§2.6.5). */
export const VIRTQ_CHAIN_MAX_BYTES = 2 ** 32;

/** Bytes of the descriptor table of a queue of `size` entries. */
export function descTableSize(size: number): number {
  return VIRTQ_DESC_SIZE * size;
}
/** Bytes of the available ring of a queue of `size` entries, including `used_event`. */
export function availRingSize(size: number): number {
  return VIRTQ_RING_ENTRIES + VIRTQ_AVAIL_ELEM_SIZE * size + VIRTQ_EVENT_SIZE;
}
/** Bytes of the used ring of a queue of `size` entries, including `avail_event`. */
export function usedRingSize(size: number): number {
  return VIRTQ_RING_ENTRIES + VIRTQ_USED_ELEM_SIZE * size + VIRTQ_EVENT_SIZE;
}

// ---------------------------------------------------------------------------------------
// §4.2.2 MMIO Device Register Layout (virtio-mmio version 2; Linux virtio_mmio.h names).

/** Offset 0x000, R: magic value, must read VIRTIO_MMIO_MAGIC. */
export const VIRTIO_MMIO_MAGIC_VALUE = 0x000;
/** Offset 0x004, R: device version number, VIRTIO_MMIO_VERSION_2 (no legacy interface). */
export const VIRTIO_MMIO_VERSION = 0x004;
/** Offset 0x008, R: virtio subsystem device id (VIRTIO_ID_*). */
export const VIRTIO_MMIO_DEVICE_ID = 0x008;
/** Offset 0x00c, R: virtio subsystem vendor id. */
export const VIRTIO_MMIO_VENDOR_ID = 0x00c;
/** Offset 0x010, R: 32 device feature bits of the page selected by DeviceFeaturesSel. */
export const VIRTIO_MMIO_DEVICE_FEATURES = 0x010;
/** Offset 0x014, W: device features page selector. */
export const VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014;
/** Offset 0x020, W: 32 driver (acked) feature bits of the page selected by DriverFeaturesSel. */
export const VIRTIO_MMIO_DRIVER_FEATURES = 0x020;
/** Offset 0x024, W: driver features page selector. */
export const VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024;
/** Offset 0x030, W: selects the queue the Queue* registers refer to. */
export const VIRTIO_MMIO_QUEUE_SEL = 0x030;
/** Offset 0x034, R: maximum size of the selected queue (0: queue not available). */
export const VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034;
/** Offset 0x038, W: size the driver will use for the selected queue. */
export const VIRTIO_MMIO_QUEUE_NUM = 0x038;
/** Offset 0x044, RW: the selected queue is ready (1) or not (0). */
export const VIRTIO_MMIO_QUEUE_READY = 0x044;
/** Offset 0x050, W: queue notifier (the value is the queue index). Served by ioeventfd. */
export const VIRTIO_MMIO_QUEUE_NOTIFY = 0x050;
/** Offset 0x060, R: interrupt status (VIRTIO_MMIO_INT_* bits). */
export const VIRTIO_MMIO_INTERRUPT_STATUS = 0x060;
/** Offset 0x064, W: interrupt acknowledge; clears the written bits of InterruptStatus. */
export const VIRTIO_MMIO_INTERRUPT_ACK = 0x064;
/** Offset 0x070, RW: device status (VIRTIO_CONFIG_S_* bits); writing 0 resets. */
export const VIRTIO_MMIO_STATUS = 0x070;
/** Offset 0x080/0x084, W: descriptor table address, low / high 32 bits. */
export const VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080;
/** See VIRTIO_MMIO_QUEUE_DESC_LOW. */
export const VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084;
/** Offset 0x090/0x094, W: available ring ("driver area") address, low / high. */
export const VIRTIO_MMIO_QUEUE_AVAIL_LOW = 0x090;
/** See VIRTIO_MMIO_QUEUE_AVAIL_LOW. */
export const VIRTIO_MMIO_QUEUE_AVAIL_HIGH = 0x094;
/** Offset 0x0a0/0x0a4, W: used ring ("device area") address, low / high. */
export const VIRTIO_MMIO_QUEUE_USED_LOW = 0x0a0;
/** See VIRTIO_MMIO_QUEUE_USED_LOW. */
export const VIRTIO_MMIO_QUEUE_USED_HIGH = 0x0a4;
/** Offset 0x0ac, W: shared memory region select (virtio 1.2 §4.2.2 SHMSel). */
export const VIRTIO_MMIO_SHM_SEL = 0x0ac;
/** Offset 0x0b0/0x0b4, R: the selected shared memory region's length, low / high. */
export const VIRTIO_MMIO_SHM_LEN_LOW = 0x0b0;
/** See VIRTIO_MMIO_SHM_LEN_LOW. */
export const VIRTIO_MMIO_SHM_LEN_HIGH = 0x0b4;
/** Offset 0x0b8/0x0bc, R: the selected shared memory region's guest address, low / high. */
export const VIRTIO_MMIO_SHM_BASE_LOW = 0x0b8;
/** See VIRTIO_MMIO_SHM_BASE_LOW. */
export const VIRTIO_MMIO_SHM_BASE_HIGH = 0x0bc;
/** What the SHM length and base registers read for a region that does not exist (all ones: -1). */
export const VIRTIO_MMIO_SHM_NONE = 0xffff_ffff;
/** Offset 0x0fc, R: configuration atomicity value (Kindling: always 0). */
export const VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc;
/** Offset 0x100: start of the device-specific configuration space (any access width). */
export const VIRTIO_MMIO_CONFIG = 0x100;
/** Size of one virtio-mmio device window (firecracker src/vmm/src/devices/virtio/transport/mmio.rs: 4 KiB slots). */
export const VIRTIO_MMIO_REGION_SIZE = 0x1000;
/** Width of every register access below VIRTIO_MMIO_CONFIG (§4.2.2: 32-bit only). */
export const VIRTIO_MMIO_REGISTER_WIDTH = 4;

/** Value of MagicValue: "virt" little-endian. */
export const VIRTIO_MMIO_MAGIC = 0x74726976;
/** Value of Version for non-legacy devices. */
export const VIRTIO_MMIO_VERSION_2 = 2;
/** Value of VendorID (Firecracker reports 0). */
export const VIRTIO_MMIO_VENDOR = 0;

/** InterruptStatus bit: the device used a buffer in at least one queue. */
export const VIRTIO_MMIO_INT_VRING = 1;
/** InterruptStatus bit: the device configuration changed (or NEEDS_RESET was set). */
export const VIRTIO_MMIO_INT_CONFIG = 2;

// ---------------------------------------------------------------------------------------
// §5 Device Types (virtio_ids.h).

/** Network card. */
export const VIRTIO_ID_NET = 1;
/** Block device. */
export const VIRTIO_ID_BLOCK = 2;
/** Console. */
export const VIRTIO_ID_CONSOLE = 3;
/** Entropy source. */
export const VIRTIO_ID_RNG = 4;
/** Memory balloon (traditional). */
export const VIRTIO_ID_BALLOON = 5;
/** Socket device (vsock). */
export const VIRTIO_ID_VSOCK = 19;
/** Memory device (virtio-mem). */
export const VIRTIO_ID_MEM = 24;
/** File system device (virtio-fs, §5.11). */
export const VIRTIO_ID_FS = 26;
/** Persistent memory (virtio-pmem). */
export const VIRTIO_ID_PMEM = 27;

// ---------------------------------------------------------------------------------------
// §5.1 Network Device (virtio_net.h). Feature bits (§5.1.3); Kindling offers Firecracker's
// set (devices/virtio/net/device.rs `Net::new_with_tap`), the others are named for reference.

/** Device handles packets with partial checksum (the driver may send unchecksummed frames). */
export const VIRTIO_NET_F_CSUM = 0;
/** Driver handles packets with partial checksum (received frames may be unchecksummed). */
export const VIRTIO_NET_F_GUEST_CSUM = 1;
/** Control channel offloads reconfiguration. Not offered. */
export const VIRTIO_NET_F_CTRL_GUEST_OFFLOADS = 2;
/** The config space `mtu` field is valid (offered when an MTU is configured). */
export const VIRTIO_NET_F_MTU = 3;
/** The config space `mac` field is valid (offered when guest_mac is configured). */
export const VIRTIO_NET_F_MAC = 5;
/** Driver can receive TSOv4. */
export const VIRTIO_NET_F_GUEST_TSO4 = 7;
/** Driver can receive TSOv6. */
export const VIRTIO_NET_F_GUEST_TSO6 = 8;
/** Driver can receive TSO with ECN. Not offered. */
export const VIRTIO_NET_F_GUEST_ECN = 9;
/** Driver can receive UFO. */
export const VIRTIO_NET_F_GUEST_UFO = 10;
/** Device can receive TSOv4 (the driver may send large TCP segments). */
export const VIRTIO_NET_F_HOST_TSO4 = 11;
/** Device can receive TSOv6. */
export const VIRTIO_NET_F_HOST_TSO6 = 12;
/** Device can receive TSO with ECN. Not offered. */
export const VIRTIO_NET_F_HOST_ECN = 13;
/** Device can receive UFO. */
export const VIRTIO_NET_F_HOST_UFO = 14;
/** Driver can merge receive buffers: one frame may span several RX chains (`num_buffers`). */
export const VIRTIO_NET_F_MRG_RXBUF = 15;
/** The config space `status` field is valid. Not offered (status reads 0). */
export const VIRTIO_NET_F_STATUS = 16;
/** Control virtqueue. Not offered. */
export const VIRTIO_NET_F_CTRL_VQ = 17;
/** Multiqueue (`max_virtqueue_pairs` valid). Not offered: one RX and one TX queue. */
export const VIRTIO_NET_F_MQ = 22;

/** §5.1.4 `struct virtio_net_config`: `mac` (6 bytes) at offset 0. */
export const VIRTIO_NET_CONFIG_MAC = 0;
/** Offset of `status` (le16). */
export const VIRTIO_NET_CONFIG_STATUS = 6;
/** Offset of `max_virtqueue_pairs` (le16). */
export const VIRTIO_NET_CONFIG_MAX_VIRTQUEUE_PAIRS = 8;
/** Offset of `mtu` (le16). */
export const VIRTIO_NET_CONFIG_MTU = 10;
/** Bytes of the net config space Kindling exposes (mac, status, max_virtqueue_pairs, mtu). */
export const VIRTIO_NET_CONFIG_SIZE = 12;

/**
 * §5.1.6 `struct virtio_net_hdr` as a VERSION_1 device uses it (Linux `virtio_net_hdr_v1`):
 * flags u8, gso_type u8, hdr_len le16, gso_size le16, csum_start le16, csum_offset le16,
 * num_buffers le16. It precedes every frame on both queues.
 */
export const VIRTIO_NET_HDR_SIZE = 12;
/** Offset of `num_buffers`: the RX chains one received frame occupies (§5.1.6.4). */
export const VIRTIO_NET_HDR_NUM_BUFFERS = 10;

// ---------------------------------------------------------------------------------------
// §5.2 Block Device (virtio_blk.h).

/** Feature: `size_max` holds the largest segment (data descriptor) the device takes. */
export const VIRTIO_BLK_F_SIZE_MAX = 1;
/** Feature: `seg_max` holds the most segments (data descriptors) one request may have. */
export const VIRTIO_BLK_F_SEG_MAX = 2;
/** Feature: the device is read-only. */
export const VIRTIO_BLK_F_RO = 5;
/** Feature: the FLUSH command is supported (Firecracker: offered with cache_type Writeback). */
export const VIRTIO_BLK_F_FLUSH = 9;

/** Request type: read sectors into the driver's buffer. */
export const VIRTIO_BLK_T_IN = 0;
/** Request type: write the driver's buffer to sectors. */
export const VIRTIO_BLK_T_OUT = 1;
/** Request type: flush the device's write cache. */
export const VIRTIO_BLK_T_FLUSH = 4;
/** Request type: return the device id string (VIRTIO_BLK_ID_BYTES bytes). */
export const VIRTIO_BLK_T_GET_ID = 8;

/** Request status: success. */
export const VIRTIO_BLK_S_OK = 0;
/** Request status: the device or driver reported an I/O error. */
export const VIRTIO_BLK_S_IOERR = 1;
/** Request status: unsupported request type. */
export const VIRTIO_BLK_S_UNSUPP = 2;

/** Length of the GET_ID string. */
export const VIRTIO_BLK_ID_BYTES = 20;
/** Bytes per sector: capacity and request sectors are in 512-byte units, whatever blk_size says. */
export const VIRTIO_BLK_SECTOR_SIZE = 512;
/** log2(VIRTIO_BLK_SECTOR_SIZE). */
export const VIRTIO_BLK_SECTOR_SHIFT = 9;
/** Size of the request header `struct virtio_blk_outhdr`: type le32, reserved le32, sector le64. */
export const VIRTIO_BLK_OUTHDR_SIZE = 16;
/** Offset of `type` in the request header. */
export const VIRTIO_BLK_OUTHDR_TYPE = 0;
/** Offset of `sector` in the request header. */
export const VIRTIO_BLK_OUTHDR_SECTOR = 8;
/** Offset of `capacity` (le64, in sectors) in `struct virtio_blk_config`. */
export const VIRTIO_BLK_CONFIG_CAPACITY = 0;
/** Offset of `size_max` (le32, bytes) in `struct virtio_blk_config` (§5.2.4). */
export const VIRTIO_BLK_CONFIG_SIZE_MAX = 8;
/** Offset of `seg_max` (le32) in `struct virtio_blk_config` (§5.2.4). */
export const VIRTIO_BLK_CONFIG_SEG_MAX = 12;
/** Bytes of the block config space Kindling exposes: capacity, size_max, seg_max. */
export const VIRTIO_BLK_CONFIG_SIZE = 16;

/** The bigint mask of one feature bit. */
export function featureBit(bit: number): bigint {
  return 1n << BigInt(bit);
}

/** True when `features` has feature `bit` set. */
export function hasFeature(features: bigint, bit: number): boolean {
  return (features & featureBit(bit)) !== 0n;
}
