/**
 * The file-backed BlockBackend of the `Sync` io_engine: positional reads and writes on the
 * drive's file descriptor, on the device worker's own thread (so blocking is fine: it only
 * delays this drive). Guest buffers are views of guest RAM; data moves without extra copies.
 *
 * io_engine `Async` is src/actors/virtio/uring-backend.ts (io_uring needs koffi, so it lives
 * with the actor); both share `backingFileId`.
 */
import { readSync, writeSync, fsyncSync, fstatSync } from 'node:fs';
import type { BlockBackend } from './device.js';
import { VIRTIO_BLK_ID_BYTES } from '../constants.js';

export class FileBlockBackend implements BlockBackend {
  constructor(readonly fd: number) {}

  /** Size of the backing file in bytes. */
  size(): number {
    return fstatSync(this.fd).size;
  }

  readAt(buf: Uint8Array, offset: number): number {
    let done = 0;
    while (done < buf.length) {
      const n = readSync(this.fd, buf, done, buf.length - done, offset + done);
      if (n === 0) break; // past EOF: the rest stays as the guest left it, like a short read
      done += n;
    }
    return done;
  }

  writeAt(buf: Uint8Array, offset: number): number {
    let done = 0;
    while (done < buf.length) done += writeSync(this.fd, buf, done, buf.length - done, offset + done);
    return done;
  }

  flush(): void {
    fsyncSync(this.fd);
  }

  getId(): Uint8Array {
    return backingFileId(this.fd);
  }
}

/** Firecracker's device id: the string `{st_dev}{st_rdev}{st_ino}` of the backing file, truncated. */
export function backingFileId(fd: number): Uint8Array {
  const st = fstatSync(fd);
  return Buffer.from(`${st.dev}${st.rdev}${st.ino}`).subarray(0, VIRTIO_BLK_ID_BYTES);
}
