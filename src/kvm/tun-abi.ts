/**
 * The TUN/TAP user ABI (linux/include/uapi/linux/if_tun.h, linux/if.h, x86_64), defined once:
 * `struct ifreq` as TUNSETIFF uses it, `struct iovec` for readv/writev, the ioctl numbers and
 * flags by their uapi names. Sizes are asserted in test/unit/tap.test.ts.
 */
import koffi from 'koffi';
import { namedStruct } from './koffi-types.js';
import { _IOW } from './ioctls.js';

/** IFNAMSIZ: an interface name with its NUL. */
export const IFNAMSIZ = 16;

/** struct ifreq: the name, then a 24-byte union of which TUNSETIFF reads `ifr_flags`. */
export const ifreq = namedStruct('ifreq', {
  ifr_name: koffi.array('char', IFNAMSIZ, 'Array'),
  ifr_flags: 'int16_t',
  pad: koffi.array('uint8_t', 22, 'Array'),
});

/** struct iovec { void *iov_base; size_t iov_len; }, as readv/writev take it. */
export const iovec = namedStruct('iovec', { iov_base: 'uint64_t', iov_len: 'uint64_t' });
export const IOVEC_SIZE = 16;

/** if_tun.h ioctl type byte ('T'). */
const TUN_IOCTL_TYPE = 0x54;
const INT_SIZE = 4;
/** TUNSETIFF = _IOW('T', 202, int). */
export const TUNSETIFF = _IOW(TUN_IOCTL_TYPE, 202, INT_SIZE);
/** TUNSETOFFLOAD = _IOW('T', 208, unsigned int). */
export const TUNSETOFFLOAD = _IOW(TUN_IOCTL_TYPE, 208, INT_SIZE);
/** TUNSETVNETHDRSZ = _IOW('T', 216, int). */
export const TUNSETVNETHDRSZ = _IOW(TUN_IOCTL_TYPE, 216, INT_SIZE);

/** TUNSETIFF flags: a TAP (Ethernet frames), no packet-info prefix, a virtio-net header first. */
export const IFF_TAP = 0x0002;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;

/** open(2) flag for a non-blocking TAP fd (defined in libc.ts). */
export { O_NONBLOCK } from './libc.js';
