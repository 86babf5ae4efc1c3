/**
 * A TAP device opened the way Firecracker opens it (src/vmm/src/devices/virtio/net/tap.rs):
 * `/dev/net/tun` O_RDWR|O_NONBLOCK|O_CLOEXEC, TUNSETIFF with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR on
 * an existing interface name, TUNSETVNETHDRSZ 12 (virtio_net_hdr_v1), and TUNSETOFFLOAD once
 * the guest's features are known. Frames move with readv/writev straight between the TAP and
 * views of guest RAM: the views' host addresses go to the kernel, no bytes pass through JS.
 *
 * Errors carry Firecracker's `TapError` texts, since they reach the user through PUT
 * /network-interfaces and InstanceStart.
 */
import koffi from 'koffi';
import * as libc from './libc.js';
import { TapError } from '../errors.js';
import {
  IFF_NO_PI, IFF_TAP, IFF_VNET_HDR, IFNAMSIZ, O_NONBLOCK, TUNSETIFF, TUNSETOFFLOAD, TUNSETVNETHDRSZ, ifreq,
} from './tun-abi.js';

const TUN_PATH = '/dev/net/tun';
/** sizeof(struct virtio_net_hdr_v1): the header the TAP reads and writes before each frame. */
export const VNET_HDR_SIZE = 12;
/** How many guest buffers one readv/writev may take (the scratch iovec array's capacity). */
export const MAX_IOVECS = 256;


function ioText(errno: number): string {
  return `${libc.strerror(errno) as string} (os error ${errno})`;
}

export class Tap {
  /** The interface name as given (and as the kernel accepted it). */
  readonly name: string;
  readonly fd: number;
  private readonly iov = new libc.IovecArray(MAX_IOVECS);

  private constructor(name: string, fd: number) {
    this.name = name;
    this.fd = fd;
  }

  /** Opens and attaches to the existing TAP `name`; throws TapError with Firecracker's text. */
  static open(name: string): Tap {
    const nameBytes = Buffer.from(name);
    if (nameBytes.length >= IFNAMSIZ || nameBytes.includes(0)) throw new TapError('TAP_INVALID_NAME', 'Invalid interface name');
    const fd = libc.open(TUN_PATH, libc.O_RDWR | O_NONBLOCK | libc.O_CLOEXEC, 0);
    if (fd < 0) throw new TapError('TAP_OPEN_TUN', `Couldn't open /dev/net/tun: ${ioText(libc.errno())}`);
    try {
      const req = Buffer.alloc(koffi.sizeof(ifreq));
      nameBytes.copy(req, 0);
      req.writeInt16LE(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, IFNAMSIZ);
      if (libc.ioctlPtr(fd, TUNSETIFF, req) < 0) {
        throw new TapError('TAP_IFREQ', `Error while creating ifreq structure: ${ioText(libc.errno())}. Invalid TUN/TAP Backend provided by ${name}. Check our documentation on setting up the network devices.`);
      }
      const size = Buffer.alloc(4);
      size.writeInt32LE(VNET_HDR_SIZE, 0);
      if (libc.ioctlPtr(fd, TUNSETVNETHDRSZ, size) < 0) throw new TapError('TAP_VNET_HDR', `Unable to set vnet header size: ${ioText(libc.errno())}`);
    } catch (e) {
      libc.close(fd);
      throw e;
    }
    return new Tap(name, fd);
  }

  /** A TAP another thread opened (the device worker takes the fd main opened and configured). */
  static fromFd(name: string, fd: number): Tap {
    return new Tap(name, fd);
  }

  /** Tells the kernel which offloads the guest can take (TUN_F_* flags from its acked features). */
  setOffload(flags: number): void {
    if (libc.ioctlInt(this.fd, TUNSETOFFLOAD, flags) < 0) throw new TapError('TAP_OFFLOAD', `Unable to set offload flags: ${ioText(libc.errno())}`);
  }

  /** readv into `bufs` (views of guest RAM): bytes read, or -errno (-EAGAIN when empty). */
  read(bufs: readonly Uint8Array[]): number {
    return this.io(libc.readv, bufs);
  }

  /** writev from `bufs`: bytes written, or -errno. */
  write(bufs: readonly Uint8Array[]): number {
    return this.io(libc.writev, bufs);
  }

  close(): void {
    libc.close(this.fd);
  }

  private io(f: typeof libc.readv, bufs: readonly Uint8Array[]): number {
    const n = Math.min(bufs.length, MAX_IOVECS);
    // One FFI call per frame: the views' addresses come from a per-buffer base (libc.hostAddress).
    for (let i = 0; i < n; i++) this.iov.set(i, bufs[i]!);
    const r = Number(f(this.fd, this.iov.buffer, n));
    return r < 0 ? -libc.errno() : r;
  }
}
