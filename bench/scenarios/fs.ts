/**
 * Scenario **Shared directory** (`--only fs`): sequential throughput of a host directory shared
 * through virtio-fs (virtiofsd as the vhost-user backend, started by Kindling for `shared_dir`)
 * against the same work on an ext4 image on a virtio-block drive, in the same guest boot, so
 * both see the same sandbox, kernel and moment. Kindling only: both sides of the comparison
 * are Kindling (as the block transport scenario), and QEMU's virtio-fs would need the same
 * virtiofsd and a shared-memory backend, which is another measurement.
 *
 * The Debian kernel (virtiofs is a module there; the minimal kernel has no FUSE) mounts both
 * and runs, for each of /fs (virtio-fs) and /blk (ext4 on /dev/vda):
 *
 *   dd if=/dev/zero of=<mnt>/bench bs=1M count=64 conv=fsync   (sequential write, flushed)
 *   echo 3 > /proc/sys/vm/drop_caches                          (the read starts cold)
 *   dd if=<mnt>/bench of=/dev/null bs=1M                       (sequential read)
 *
 * timed with the guest's /proc/uptime as the block scenario does: `BENCH_FS w0 w1 r1 w2 w3 r3`.
 * The shared folder and the image live in the temporary folder (a tmpfs in the sandbox), so
 * the host side of both is the page cache: what differs is the path through the VMM and
 * the backend.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootOnce, type RunContext, type VmSpec } from './vm-run.js';
import type { ResultsCollector, RunRecord } from '../results.js';

const FILE_MIB = 64;
/** The ext4 image: the file plus ext4's own overhead. */
const IMAGE_MIB = 128;
const MOUNTS = [['fs', '/fs'], ['blk', '/blk']] as const;

const timed = (mnt: string): string =>
  `read a x </proc/uptime; dd if=/dev/zero of=${mnt}/bench bs=1M count=${FILE_MIB} conv=fsync 2>/dev/null; read b x </proc/uptime; `
  + `echo 3 > /proc/sys/vm/drop_caches; dd if=${mnt}/bench of=/dev/null bs=1M 2>/dev/null; read c x </proc/uptime; `;
const GUEST_CMD = '"mkdir -p /fs /blk; mount -t virtiofs bench /fs && mount -t ext4 /dev/vda /blk && '
  + `${timed('/fs')}f0=$a; f1=$b; f2=$c; ${timed('/blk')}echo BENCH_FS $f0 $f1 $f2 $a $b $c"`;

/** Declares the shared-directory metrics. */
export function defineFsMetrics(c: ResultsCollector): void {
  const note = (what: string, mnt: string): string => `Debian kernel, Kindling only; guest ${what} of a ${FILE_MIB} MiB file on ${mnt}, timed with /proc/uptime; both mounts in the same boot.`;
  c.define({ id: 'fs.virtiofs.write', scenario: 'Shared directory', label: `sequential write, ${FILE_MIB} MiB, virtio-fs (virtiofsd)`, unit: 'MiB/s', better: 'higher', note: note('`dd of=/fs/bench bs=1M conv=fsync`', 'a virtio-fs mount of a host folder') });
  c.define({ id: 'fs.virtiofs.read', scenario: 'Shared directory', label: `sequential read, ${FILE_MIB} MiB, virtio-fs (virtiofsd)`, unit: 'MiB/s', better: 'higher', note: note('`dd if=/fs/bench bs=1M` after drop_caches', 'a virtio-fs mount of a host folder') });
  c.define({ id: 'fs.blk.write', scenario: 'Shared directory', label: `sequential write, ${FILE_MIB} MiB, ext4 on virtio-blk`, unit: 'MiB/s', better: 'higher', note: note('`dd of=/blk/bench bs=1M conv=fsync`', `an ext4 image (${IMAGE_MIB} MiB) on a virtio-block drive`) });
  c.define({ id: 'fs.blk.read', scenario: 'Shared directory', label: `sequential read, ${FILE_MIB} MiB, ext4 on virtio-blk`, unit: 'MiB/s', better: 'higher', note: note('`dd if=/blk/bench bs=1M` after drop_caches', `an ext4 image (${IMAGE_MIB} MiB) on a virtio-block drive`) });
}

/** MiB/s per mount and direction from `BENCH_FS w0 w1 r1 w2 w3 r3` (undefined if absent). */
export function fsRates(consoleText: string, fileMiB = FILE_MIB): Record<'fs' | 'blk', { write?: number; read?: number }> | undefined {
  const m = /BENCH_FS ([0-9.]+) ([0-9.]+) ([0-9.]+) ([0-9.]+) ([0-9.]+) ([0-9.]+)/.exec(consoleText);
  if (!m) return undefined;
  const t = m.slice(1, 7).map(Number);
  const rate = (secs: number): number | undefined => (secs > 0 ? fileMiB / secs : undefined);
  return { fs: { write: rate(t[1]! - t[0]!), read: rate(t[2]! - t[1]!) }, blk: { write: rate(t[4]! - t[3]!), read: rate(t[5]! - t[4]!) } };
}

/** Runs the rounds: one Debian boot per round with both mounts. */
export async function runFs(c: ResultsCollector, debian: VmSpec, ctx: RunContext, rounds: number, log: (m: string) => void): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    const run: RunRecord = { scenario: 'fs', variant: 'debian-1vcpu-virtiofs-vs-blk', side: 'kindling', round, warmup: false, ok: false, startedAt: new Date().toISOString(), data: {} };
    c.runs.push(run);
    const dir = mkdtempSync(join(tmpdir(), 'kindling-bench-fs-'));
    try {
      const share = join(dir, 'share');
      mkdirSync(share);
      const image = join(dir, 'blk.ext4');
      execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', image, `${IMAGE_MIB}M`]);
      const args = debian.bootArgs.replace(/ -- kindling-run .*$/, '');
      const spec: VmSpec = { ...debian, bootArgs: `${args} -- kindling-run ${GUEST_CMD}`, drive: image, fs: { tag: 'bench', sharedDir: share } };
      const s = await bootOnce('kindling', spec, ctx, /KINDLING_EXIT=\d+/);
      const r = fsRates(s.console);
      run.data = { rates: r, console: s.console.slice(0, 2000) };
      if (!r || MOUNTS.some(([k]) => r[k].read === undefined || r[k].write === undefined)) throw new Error(`no BENCH_FS timing line: ${s.console.slice(0, 600)}`);
      for (const [k] of MOUNTS) {
        c.add(`fs.${k === 'fs' ? 'virtiofs' : 'blk'}.write`, 'kindling', r[k].write!);
        c.add(`fs.${k === 'fs' ? 'virtiofs' : 'blk'}.read`, 'kindling', r[k].read!);
      }
      run.ok = true;
      log(`fs round ${round + 1}/${rounds}: virtio-fs write ${r.fs.write!.toFixed(1)} read ${r.fs.read!.toFixed(1)} MiB/s; ext4 on virtio-blk write ${r.blk.write!.toFixed(1)} read ${r.blk.read!.toFixed(1)} MiB/s`);
    } catch (e) {
      run.error = (e as Error).message;
      log(`fs round ${round + 1} FAILED: ${run.error}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
