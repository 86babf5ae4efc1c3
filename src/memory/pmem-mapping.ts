/**
 * A virtio-pmem backing file mapped for the guest (Firecracker src/vmm/src/devices/virtio/pmem/
 * device.rs `PmemMmap`; docs/design.md "Persistent memory").
 *
 * The file is mapped MAP_SHARED | MAP_NORESERVE, so the guest's stores land in the file's page
 * cache and msync writes them back. The guest window must be a multiple of 2 MiB (virtio-pmem's
 * alignment): for a file of another length, an anonymous private mapping of the rounded length
 * is made first and the file mapped over its start, so the tail past the file is zero-filled
 * memory that is never written back (Firecracker's double mapping). Read-only devices are
 * mapped PROT_READ; the KVM slot is KVM_MEM_READONLY as well (the builder's job).
 *
 * The mapping is not a SharedArrayBuffer: no device model reads it (Firecracker's device
 * emulation does not see pmem either). The device worker only msyncs it.
 */
import { closeSync, fstatSync, openSync } from 'node:fs';
import * as libc from '../kvm/libc.js';
import { PmemError } from '../errors.js';
import { HostIoError } from '../util/io-error.js';

/** The guest window's alignment (Firecracker `Pmem::ALIGNMENT`). */
export const PMEM_MAPPING_ALIGNMENT = 2 * 1024 * 1024;

/** A mapped backing file. */
export interface PmemMapping {
  /** Host address of the mapping. */
  readonly addr: bigint;
  /** The file's length (what FLUSH msyncs). */
  readonly fileLen: number;
  /** The mapping's length: fileLen rounded up to PMEM_MAPPING_ALIGNMENT (the guest window size). */
  readonly mmapLen: number;
}

/** Firecracker `PmemError::BackingFile` text around an io::Error. */
function backingFileError(e: unknown): PmemError {
  const io = HostIoError.from(e) ?? HostIoError.os(libc.errno());
  return new PmemError('PMEM_BACKING_FILE', `Error accessing backing file: ${io.message}`, { cause: e });
}

/** Opens and maps `path`; the file descriptor is closed again (the mapping holds the file). */
export function mapPmemFile(path: string, readOnly: boolean): PmemMapping {
  let fd: number;
  try {
    fd = openSync(path, readOnly ? 'r' : 'r+');
  } catch (e) {
    throw backingFileError(e);
  }
  try {
    const fileLen = fstatSync(fd).size;
    if (fileLen === 0) throw new PmemError('PMEM_BACKING_FILE', 'Error backing file size is 0');
    const mmapLen = Math.ceil(fileLen / PMEM_MAPPING_ALIGNMENT) * PMEM_MAPPING_ALIGNMENT;
    const prot = readOnly ? libc.PROT_READ : libc.PROT_READ | libc.PROT_WRITE;
    const shared = libc.MAP_SHARED | libc.MAP_NORESERVE;
    let addr: bigint;
    try {
      if (mmapLen === fileLen) {
        addr = libc.mmapChecked(null, fileLen, prot, shared, fd, 0);
      } else {
        addr = libc.mmapChecked(null, mmapLen, prot, libc.MAP_PRIVATE | libc.MAP_NORESERVE | libc.MAP_ANONYMOUS, -1, 0);
        try {
          // SAFETY: [addr, addr + fileLen) lies inside the reservation just made.
          libc.mmapChecked(addr, fileLen, prot, shared | libc.MAP_FIXED, fd, 0);
        } catch (e) {
          libc.munmap(addr, mmapLen);
          throw e;
        }
      }
    } catch (e) {
      throw backingFileError(e);
    }
    return { addr, fileLen, mmapLen };
  } finally {
    closeSync(fd);
  }
}

/** Writes the guest's stores back to the file (MS_SYNC); false when msync failed. */
export function flushPmem(m: Pick<PmemMapping, 'addr' | 'fileLen'>): boolean {
  return libc.msync(m.addr, m.fileLen, libc.MS_SYNC) === 0;
}

/** Unmaps the file (after the VM's KVM slot for it is gone or the VM is closed). */
export function unmapPmem(m: PmemMapping): void {
  libc.munmap(m.addr, m.mmapLen);
}
