/**
 * Scenario 5, **Block**: sequential virtio-block throughput, and the Memory scenario's
 * "with a block device" variant (VMM overhead at the marker with one drive attached).
 *
 * Each run attaches a fresh 256 MiB raw image (the size issue 6 names; sparse, in the
 * temporary folder: a tmpfs in the sandbox) as /dev/vda and the guest runs
 *
 *   dd if=/dev/vda of=/dev/null bs=1M count=256              (sequential read)
 *   dd if=/dev/zero of=/dev/vda bs=1M count=256 conv=fsync   (sequential write, flushed)
 *
 * timed with the guest's /proc/uptime (kvm-clock, 10 ms resolution; the fixture's busybox dd
 * prints no timing line) and reported as `BENCH_BLK <t0> <t1> <t2>`. QEMU uses `cache=unsafe,aio=threads`
 * to match Firecracker's default (cache_type Unsafe: flushes ignored; Sync engine).
 * KINDLING_BENCH_BLOCK_ENGINE=Async gives Kindling's drive io_engine Async (io_uring, several
 * requests in flight) instead, to see whether concurrency is what a gap is made of.
 */
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootOnce, type RunContext, type VmSpec } from './vm-run.js';
import { kibToMib, type ResultsCollector, type RunRecord } from '../results.js';

const IMAGE_MIB = 256;
/** Kindling's io_engine for the drive. */
const ENGINE = process.env.KINDLING_BENCH_BLOCK_ENGINE === 'Async' ? 'Async' : 'Sync';
const GUEST_CMD = `"read a x </proc/uptime; dd if=/dev/vda of=/dev/null bs=1M count=${IMAGE_MIB} 2>/dev/null; read b x </proc/uptime; `
  + `dd if=/dev/zero of=/dev/vda bs=1M count=${IMAGE_MIB} conv=fsync 2>/dev/null; read c x </proc/uptime; echo BENCH_BLK $a $b $c"`;

/** Declares the block metrics. */
export function defineBlockMetrics(c: ResultsCollector): void {
  c.define({ id: 'block.read', scenario: 'Block', label: `sequential read, ${IMAGE_MIB} MiB`, unit: 'MiB/s', better: 'higher', note: `guest \`dd if=/dev/vda of=/dev/null bs=1M count=${IMAGE_MIB}\` right after boot (nothing cached), timed with the guest's /proc/uptime.` });
  c.define({ id: 'block.write', scenario: 'Block', label: `sequential write, ${IMAGE_MIB} MiB`, unit: 'MiB/s', better: 'higher', note: `guest \`dd if=/dev/zero of=/dev/vda bs=1M count=${IMAGE_MIB} conv=fsync\`.` });
  c.define({ id: 'mem.block.overhead', scenario: 'Memory', label: 'VMM overhead with a block device', unit: 'MiB', better: 'lower', note: 'as the minimal-kernel overhead, with one virtio-block drive attached.' });
}

/** Read and write MiB/s from the guest's `BENCH_BLK t0 t1 t2` line (undefined if absent). */
export function blockRates(consoleText: string, imageMiB = IMAGE_MIB): { read?: number; write?: number } {
  const m = /BENCH_BLK ([0-9.]+) ([0-9.]+) ([0-9.]+)/.exec(consoleText);
  if (!m) return {};
  const [t0, t1, t2] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const rate = (secs: number): number | undefined => (secs > 0 ? imageMiB / secs : undefined);
  return { read: rate(t1 - t0), write: rate(t2 - t1) };
}

/** The block VM: `base` (minimal kernel, 1 vCPU) with the dd command and a drive. */
function blockSpec(base: VmSpec, image: string): VmSpec {
  const args = base.bootArgs.replace(/ -- kindling-run .*$/, '');
  return { ...base, bootArgs: `${args} -- kindling-run ${GUEST_CMD}`, drive: image, driveEngine: ENGINE };
}

/** One boot of `spec` with a fresh image under `side`: the guest's read and write rates and the VMM's memory. */
async function measureOnce(side: 'kindling' | 'qemu', spec: VmSpec, ctx: RunContext, run: RunRecord): Promise<{ read: number; write: number; memory: BootSampleMemory }> {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-bench-blk-'));
  try {
    const image = join(dir, 'disk.img');
    writeFileSync(image, '');
    truncateSync(image, IMAGE_MIB * 1024 * 1024);
    const s = await bootOnce(side, blockSpec(spec, image), ctx, /KINDLING_EXIT=\d+/);
    const { read, write } = blockRates(s.console);
    run.data = { readMiBs: read, writeMiBs: write, memory: s.memory, console: s.console.slice(0, 2000) };
    if (read === undefined || write === undefined) throw new Error(`no BENCH_BLK timing line: ${s.console.slice(0, 400)}`);
    run.ok = true;
    return { read, write, memory: s.memory };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

type BootSampleMemory = Awaited<ReturnType<typeof bootOnce>>['memory'];

/** Runs the block rounds (Kindling then QEMU in each). */
export async function runBlock(
  c: ResultsCollector, base: VmSpec, ctx: RunContext, rounds: number, log: (m: string) => void,
): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    for (const side of ['kindling', 'qemu'] as const) {
      const run: RunRecord = { scenario: 'block', variant: ENGINE === 'Sync' ? 'mini-1vcpu-vda' : 'mini-1vcpu-vda-async', side, round, warmup: false, ok: false, startedAt: new Date().toISOString(), data: {} };
      c.runs.push(run);
      try {
        const { read, write, memory } = await measureOnce(side, base, ctx, run);
        c.add('block.read', side, read);
        c.add('block.write', side, write);
        c.add('mem.block.overhead', side, kibToMib(memory.rssKib - memory.guestKib));
        log(`block ${side} round ${round + 1}/${rounds}: read ${read.toFixed(1)} MiB/s, write ${write.toFixed(1)} MiB/s`);
      } catch (e) {
        run.error = (e as Error).message;
        log(`block ${side} round ${round + 1} FAILED: ${run.error}`);
      }
    }
  }
}

/** The two transports Kindling's block device runs on (issue 18's comparison). */
const TRANSPORTS = ['mmio', 'pci'] as const;

/** Declares the PCI-vs-MMIO block metrics (Kindling only: both sides of the comparison are Kindling). */
export function defineBlockTransportMetrics(c: ResultsCollector): void {
  for (const t of TRANSPORTS) {
    const name = t === 'pci' ? 'virtio-pci (`--enable-pci`, MSI-X)' : 'virtio-mmio';
    c.define({ id: `block.${t}.read`, scenario: 'Block transport', label: `sequential read over ${name}, Debian kernel`, unit: 'MiB/s', better: 'higher', note: `as \`block.read\`, Debian kernel, the drive on ${name}; PCI and MMIO alternate in the same sandbox boot.` });
    c.define({ id: `block.${t}.write`, scenario: 'Block transport', label: `sequential write over ${name}, Debian kernel`, unit: 'MiB/s', better: 'higher', note: `as \`block.write\`, the drive on ${name}.` });
  }
}

/**
 * Kindling's block throughput over virtio-mmio and virtio-pci, alternating, on the Debian
 * kernel (the minimal kernel has no PCI). The PCI runs drop `pci=off` from the command line.
 */
export async function runBlockTransports(
  c: ResultsCollector, debian: VmSpec, ctx: RunContext, rounds: number, log: (m: string) => void,
): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    for (const t of TRANSPORTS) {
      const run: RunRecord = { scenario: 'block-transport', variant: `debian-1vcpu-vda-${t}`, side: 'kindling', round, warmup: false, ok: false, startedAt: new Date().toISOString(), data: {} };
      c.runs.push(run);
      const spec: VmSpec = t === 'pci' ? { ...debian, pci: true, bootArgs: debian.bootArgs.replace(/(^| )pci=off(?= |$)/, '') } : debian;
      try {
        const { read, write } = await measureOnce('kindling', spec, ctx, run);
        c.add(`block.${t}.read`, 'kindling', read);
        c.add(`block.${t}.write`, 'kindling', write);
        log(`block over ${t} round ${round + 1}/${rounds}: read ${read.toFixed(1)} MiB/s, write ${write.toFixed(1)} MiB/s`);
      } catch (e) {
        run.error = (e as Error).message;
        log(`block over ${t} round ${round + 1} FAILED: ${run.error}`);
      }
    }
  }
}
