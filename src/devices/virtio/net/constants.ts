/**
 * virtio-net numbers that are not the virtio specification's (those are in ../constants.ts,
 * §5.1): Firecracker's queue layout and frame limits (src/vmm/src/devices/virtio/net/mod.rs,
 * device.rs), and the Linux uapi constants the device actor passes to the TAP
 * (include/uapi/linux/if_tun.h, if_ether.h). Kept apart from the device model so the actor
 * can import them without the model.
 */

/** Entries of each net queue (Firecracker NET_QUEUE_MAX_SIZE). */
export const NET_QUEUE_SIZE = 256;
/** Queues of a net device: one receive and one transmit queue (Firecracker NET_NUM_QUEUES). */
export const NET_NUM_QUEUES = 2;
/** Index of the receive queue (§5.1.2: receiveq1 is queue 0). */
export const NET_RX_INDEX = 0;
/** Index of the transmit queue (§5.1.2: transmitq1 is queue 1). */
export const NET_TX_INDEX = 1;

/**
 * The largest frame the device moves, vnet header included (Firecracker MAX_BUFFER_SIZE):
 * 12-byte header + 14-byte Ethernet header + 65536 bytes of (GSO) payload. TX chains longer
 * than this are malformed; RX reads wait until this much guest buffer space is held.
 */
export const MAX_BUFFER_SIZE = 65562;

/**
 * Smallest RX chain accepted without VIRTIO_NET_F_MRG_RXBUF and without any GUEST_TSO4/TSO6/UFO
 * offload: header + a 1514-byte Ethernet frame (MTU 1500). Firecracker
 * `Net::minimum_rx_buffer_size`; with a GUEST_ offload the minimum is MAX_BUFFER_SIZE, with
 * MRG_RXBUF it is the header alone.
 */
export const NET_RX_MIN_SMALL_BUFFER = 1526;

/** TUNSETOFFLOAD flag: the TAP may hand the device frames with partial checksums (GUEST_CSUM). */
export const TUN_F_CSUM = 0x01;
/** TUNSETOFFLOAD flag: TCPv4 segmentation offload (GUEST_TSO4). */
export const TUN_F_TSO4 = 0x02;
/** TUNSETOFFLOAD flag: TCPv6 segmentation offload (GUEST_TSO6). */
export const TUN_F_TSO6 = 0x04;
/** TUNSETOFFLOAD flag: UDP fragmentation offload (GUEST_UFO). */
export const TUN_F_UFO = 0x10;

/** Octets in an Ethernet address (if_ether.h ETH_ALEN). */
export const ETH_ALEN = 6;
/** Bytes of an Ethernet header: destination, source, ethertype (if_ether.h ETH_HLEN). */
export const ETH_HLEN = 14;
/** Offset of the source address in an Ethernet header (after the destination). */
export const ETH_SOURCE_OFFSET = ETH_ALEN;
