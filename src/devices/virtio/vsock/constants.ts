/**
 * virtio-vsock numbers (virtio 1.1 §5.10, Linux include/uapi/linux/virtio_vsock.h) and
 * Firecracker's own limits (src/vmm/src/devices/virtio/vsock/mod.rs `defs`, csm/mod.rs `defs`,
 * unix/mod.rs `defs`, device.rs), kept apart from the model so the actor can import them
 * without it. Kindling's additions for hostile host clients are marked as such.
 */

/** Queues: receive (device → driver), transmit (driver → device), event (§5.10.2). */
export const VSOCK_NUM_QUEUES = 3;
export const VSOCK_RX_INDEX = 0;
export const VSOCK_TX_INDEX = 1;
export const VSOCK_EV_INDEX = 2;
/** Entries of each queue (Firecracker FIRECRACKER_MAX_QUEUE_SIZE). */
export const VSOCK_QUEUE_SIZE = 256;

/** Config space: `le64 guest_cid` (§5.10.4). */
export const VSOCK_CONFIG_GUEST_CID = 0;
export const VSOCK_CONFIG_SIZE = 8;
/** Offset of guest_cid's upper 32 bits, which a driver may read on its own. */
export const VSOCK_CONFIG_GUEST_CID_HIGH = 4;

/** The host's CID: the only destination the device serves (VMADDR_CID_HOST). */
export const VSOCK_HOST_CID = 2;

/**
 * struct virtio_vsock_hdr (§5.10.6), packed little-endian, 44 bytes:
 * le64 src_cid, le64 dst_cid, le32 src_port, le32 dst_port, le32 len, le16 type, le16 op,
 * le32 flags, le32 buf_alloc, le32 fwd_cnt.
 */
export const VSOCK_HDR_SRC_CID = 0;
export const VSOCK_HDR_DST_CID = 8;
export const VSOCK_HDR_SRC_PORT = 16;
export const VSOCK_HDR_DST_PORT = 20;
export const VSOCK_HDR_LEN = 24;
export const VSOCK_HDR_TYPE = 28;
export const VSOCK_HDR_OP = 30;
export const VSOCK_HDR_FLAGS = 32;
export const VSOCK_HDR_BUF_ALLOC = 36;
export const VSOCK_HDR_FWD_CNT = 40;
export const VSOCK_PKT_HDR_SIZE = 44;

/** `type`: the only socket type virtio-vsock defines for this device (stream). */
export const VIRTIO_VSOCK_TYPE_STREAM = 1;

/** `op` values (§5.10.6). */
export const VIRTIO_VSOCK_OP_INVALID = 0;
export const VIRTIO_VSOCK_OP_REQUEST = 1;
export const VIRTIO_VSOCK_OP_RESPONSE = 2;
export const VIRTIO_VSOCK_OP_RST = 3;
export const VIRTIO_VSOCK_OP_SHUTDOWN = 4;
export const VIRTIO_VSOCK_OP_RW = 5;
export const VIRTIO_VSOCK_OP_CREDIT_UPDATE = 6;
export const VIRTIO_VSOCK_OP_CREDIT_REQUEST = 7;

/** SHUTDOWN `flags`: the sender will receive no more data / will send no more data. */
export const VIRTIO_VSOCK_SHUTDOWN_RCV = 1;
export const VIRTIO_VSOCK_SHUTDOWN_SEND = 2;

/** struct virtio_vsock_event { le32 id; } and its only id (§5.10.6.6). */
export const VIRTIO_VSOCK_EVENT_SIZE = 4;
export const VIRTIO_VSOCK_EVENT_TRANSPORT_RESET = 0;

/** The most data one packet may carry (Firecracker MAX_PKT_BUF_SIZE, 64 KiB). */
export const MAX_PKT_BUF_SIZE = 64 * 1024;

/**
 * Per-connection buffer for guest data the host socket could not take yet (Firecracker
 * CONN_TX_BUF_SIZE). It is also the `buf_alloc` the device advertises, so a guest that
 * respects its credit can never overflow it.
 */
export const CONN_TX_BUF_SIZE = 64 * 1024;
/** Send the guest a credit update once it believes less than this is free (CONN_CREDIT_UPDATE_THRESHOLD). */
export const CONN_CREDIT_UPDATE_THRESHOLD = 4 * 1024;
/** A host-initiated REQUEST the guest does not answer in this time is reset (CONN_REQUEST_TIMEOUT_MS). */
export const CONN_REQUEST_TIMEOUT_MS = 2000;
/** A connection shutting down that is not gone after this time is reset (CONN_SHUTDOWN_TIMEOUT_MS). */
export const CONN_SHUTDOWN_TIMEOUT_MS = 2000;

/** Connections the device keeps at once (Firecracker MAX_CONNECTIONS). */
export const MAX_CONNECTIONS = 1023;

/**
 * Host-initiated connections get a local port allocated round robin in [2^30, 2^31)
 * (Firecracker `VsockMuxer::allocate_local_port`): the top bits 01 mark them.
 */
export const LOCAL_PORT_FIRST = 2 ** 30;
export const LOCAL_PORT_END = 2 ** 31;

/**
 * The host's connect command, `CONNECT <port>\n` (docs/vsock.md): at least this many bytes are
 * part of the line before a newline ends it (`b"connect 0\n".len()`), and at most this many
 * are read (Firecracker `read_local_stream_port`).
 */
export const CONNECT_LINE_MIN = 10;
export const CONNECT_LINE_MAX = 32;

/**
 * Kindling: RST packets waiting for guest RX buffers (for refused requests and stray packets).
 * Firecracker's muxer RX queue holds 256 entries of either kind (MUXER_RXQ_SIZE); past that an
 * RST is dropped. A guest that floods requests but reads nothing cannot grow this.
 */
export const RST_QUEUE_MAX = 256;

/**
 * Kindling: accepted host connections still waiting for their CONNECT line. Firecracker keeps
 * any number, forever; here at most this many are held (the listener is not polled while
 * full, so further clients wait in the kernel's backlog), and each is closed after
 * HOST_CONNECT_TIMEOUT_MS without a complete line, so silent clients cannot exhaust fds.
 */
export const MAX_PENDING_HOST_CONNECTIONS = 128;
/** Kindling: how long a host connection may take to send its CONNECT line (a human typing it included). */
export const HOST_CONNECT_TIMEOUT_MS = 10_000;
/** Kindling: accepts taken per wake-up, so a connect flood cannot monopolise the worker. */
export const ACCEPTS_PER_WAKE = 64;
/** Kindling: after accept(2) fails for lack of fds or memory, the listener rests this long instead of spinning. */
export const ACCEPT_BACKOFF_MS = 100;
