/**
 * One VM boot, measured the same way for both VMMs: spawn the process, wait for the guest's
 * userspace marker on the serial console, and at that moment read the process's memory and
 * KVM's statistics; then SIGKILL it. Used by the boot/exits/memory and block scenarios.
 *
 *   Kindling: node dist/bench/kindling-vm.js (the MicroVm library, one VM per process)
 *   QEMU:     qemu-system-x86_64 -M microvm,... -enable-kvm -cpu host (same kernel, initrd,
 *             command line, memory and vCPUs)
 *
 * "InstanceStart" for Kindling is the moment the child calls vm.start() (it builds the VM
 * from there, as Firecracker does); QEMU has no such moment, so its boot starts at process
 * start. Both are also measured from process start.
 */
import { join } from 'node:path';
import { Watched, cpuSince, guestRamMatcher, readProcMemory, threadCpuMap, type ProcMemory } from './process.js';
import { threadIds, type KvmStats, type UserspaceExits } from './kvm-stats.js';
import type { KindlingVmArgs, KindlingVmReport } from '../kindling-vm.js';
import type { Side } from '../results.js';
import { nsToMs } from '../results.js';
import type { Runtime } from '../stage.js';

/** The serial text that marks guest userspace (scripts/guest/init prints it). */
export const GUEST_MARKER = 'KINDLING_GUEST_READY';

/** QEMU's machine: microvm without option ROMs or RTC (Firecracker has neither). */
export const QEMU_MACHINE = 'microvm,x-option-roms=off,rtc=off';

/** A VM to boot. */
export interface VmSpec {
  kernel: string;
  initrd: string;
  bootArgs: string;
  vcpus: number;
  memMiB: number;
  /** A raw disk image to attach as a read-write virtio-block device. */
  drive?: string;
  /** Kindling's io_engine for `drive` (default Sync, Firecracker's default). */
  driveEngine?: 'Sync' | 'Async';
  /** An existing TAP for one virtio-net interface (Kindling: network-interfaces; QEMU: -netdev tap, vhost off). */
  tap?: string;
  /**
   * A vsock device with this guest CID. Kindling: PUT /vsock with `udsPath`; QEMU:
   * vhost-vsock-device (the in-kernel vhost backend, needs /dev/vhost-vsock), whose host side
   * is AF_VSOCK itself.
   */
  vsock?: { guestCid: number; udsPath: string };
  /** Kindling only: devices on virtio-pci (`--enable-pci`); QEMU runs are not asked for it. */
  pci?: boolean;
  /** Kindling only: a virtio-fs device sharing `sharedDir` under `tag` (Kindling starts virtiofsd). */
  fs?: { tag: string; sharedDir: string };
}

/** What the harness needs to run VMs. */
export interface RunContext {
  /** Where Node, Kindling, QEMU and the fixtures are (staged on tmpfs in the sandbox). */
  runtime: Runtime;
  stats: KvmStats;
  timeoutMs: number;
}

/** Everything measured in one boot. */
export interface BootSample {
  side: Side;
  /** Process start → marker (ms). */
  processToReadyMs: number;
  /** Kindling: InstanceStart → marker; QEMU: process start → marker (ms). */
  instanceToReadyMs: number;
  /** Guest's own uptime when init printed the marker (s). */
  guestUptimeS?: number;
  userspaceExits?: UserspaceExits;
  /** Per-VM KVM debugfs statistics at the marker. */
  kvm?: Record<string, number>;
  /** Kindling's own exit counters (sum over vCPUs, and per vCPU). */
  selfExits?: number;
  selfExitCounts?: KindlingVmReport['exitCounts'];
  memory: ProcMemory;
  /** Console text after the marker up to the kill (for the block scenario). */
  console: string;
  /** With `until`: CPU ms per VMM thread from the marker to `until` (`name:ms …`, threads of 10 ms and up). */
  cpuAfterMarker?: string;
  /** Kindling: where InstanceStart's time went (the builder's cumulative phases). */
  phases?: string;
  /** With `until`: the VM's KVM debugfs counters at `until` minus those at the marker. */
  kvmAfterMarker?: Record<string, number>;
  /** With `midway`: CPU ms per VMM thread from the marker to `midway` (as cpuAfterMarker). */
  cpuToMidway?: string;
  /** With `midway`: the KVM debugfs counters at `midway` minus those at the marker. */
  kvmToMidway?: Record<string, number>;
}

/** The QEMU command line for a spec (everything after the binary). */
export function qemuArgs(spec: VmSpec, extra: readonly string[] = []): string[] {
  const drive = spec.drive
    ? ['-drive', `id=bench,file=${spec.drive},format=raw,if=none,cache=unsafe,aio=threads`, '-device', 'virtio-blk-device,drive=bench']
    : [];
  // vhost=off: QEMU's own userspace virtio-net, as Kindling and Firecracker serve the device in the VMM.
  const net = spec.tap
    ? ['-netdev', `tap,id=bench,ifname=${spec.tap},script=no,downscript=no,vhost=off`, '-device', 'virtio-net-device,netdev=bench']
    : [];
  const vsock = spec.vsock ? ['-device', `vhost-vsock-device,guest-cid=${spec.vsock.guestCid}`] : [];
  return [
    '-M', QEMU_MACHINE, '-enable-kvm', '-cpu', 'host', '-m', String(spec.memMiB), '-smp', String(spec.vcpus),
    '-nodefaults', '-no-user-config', '-nographic', '-serial', 'stdio', '-no-reboot',
    '-kernel', spec.kernel, '-initrd', spec.initrd, '-append', spec.bootArgs, ...drive, ...net, ...vsock, ...extra,
  ];
}

/** The Kindling child's command line. */
export function kindlingArgs(repo: string, spec: VmSpec): string[] {
  const a: KindlingVmArgs = {
    kernel: spec.kernel, initrd: spec.initrd, bootArgs: spec.bootArgs, vcpus: spec.vcpus, memMiB: spec.memMiB,
    marker: GUEST_MARKER,
    ...(spec.drive ? { drives: [{ drive_id: 'bench', path_on_host: spec.drive, is_root_device: false, is_read_only: false, ...(spec.driveEngine ? { io_engine: spec.driveEngine } : {}) }] } : {}),
    ...(spec.tap ? { nets: [{ iface_id: 'eth0', host_dev_name: spec.tap }] } : {}),
    ...(spec.vsock ? { vsock: { guest_cid: spec.vsock.guestCid, uds_path: spec.vsock.udsPath } } : {}),
    ...(spec.pci ? { enablePci: true } : {}),
    ...(spec.fs ? { fs: [{ id: 'bench', tag: spec.fs.tag, shared_dir: spec.fs.sharedDir }] } : {}),
  };
  // KINDLING_BENCH_CPU_PROF=<dir>: V8 CPU profiles of the child and each of its actors there
  // (a diagnosis aid; the numbers of such a run are not comparable).
  const prof = process.env.KINDLING_BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.KINDLING_BENCH_CPU_PROF] : [];
  // KINDLING_BENCH_NODE_FLAGS="--flag ...": node/V8 flags for the Kindling child, for A/B
  // runs of a runtime setting (e.g. --single-threaded-gc, 2026-12-07-10.findings.md).
  const extra = process.env.KINDLING_BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? [];
  return [...extra, ...prof, join(repo, 'dist', 'bench', 'kindling-vm.js'), JSON.stringify(a)];
}

/** The KVM counters of `end` minus those of `start`. */
export function kvmDelta(start: Record<string, number>, end: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(end).map(([k, v]) => [k, v - (start[k] ?? 0)]));
}

/**
 * Boots `spec` under `side`, measures at the marker, optionally waits for `until` on the
 * console (the block scenario's results), then kills the VMM. With `midway` (which must show
 * before `until`) the thread CPU and KVM counters are also taken when it shows, so a scenario
 * that runs two tests in one boot (net: upload, then download) can tell them apart.
 */
export async function bootOnce(side: Side, spec: VmSpec, ctx: RunContext, until?: RegExp, midway?: RegExp): Promise<BootSample> {
  const before = ctx.stats.snapshot();
  const rt = ctx.runtime;
  const proc = side === 'kindling'
    ? new Watched(rt.node, kindlingArgs(rt.kindlingRepo, spec), rt.nodeEnv)
    : new Watched(rt.qemu, qemuArgs(spec, rt.qemuExtraArgs), rt.qemuEnv);
  try {
    const marker = await proc.waitFor(new RegExp(GUEST_MARKER), ctx.timeoutMs);
    // Measure first: the guest keeps running.
    const cpuAtMarker = threadCpuMap(proc.pid);
    const tids = threadIds(proc.pid);
    const userspaceExits = ctx.stats.userspaceExits(tids, before);
    const kvm = ctx.stats.vmStats(proc.pid);
    const memory = readProcMemory(proc.pid, guestRamMatcher(side, spec.memMiB));
    const sample: BootSample = {
      side,
      processToReadyMs: nsToMs(marker.ns - proc.startNs),
      instanceToReadyMs: nsToMs(marker.ns - proc.startNs),
      memory, console: '',
      ...(userspaceExits ? { userspaceExits } : {}),
      ...(kvm ? { kvm } : {}),
    };
    if (side === 'kindling') {
      const started = /BENCH_INSTANCE_START (\d+)/.exec(proc.text);
      if (!started) throw new Error('the Kindling child printed no BENCH_INSTANCE_START');
      sample.instanceToReadyMs = nsToMs(marker.ns - BigInt(started[1]!));
      const rep = await proc.waitFor(/BENCH_KINDLING (\{.*\})\r?\n/, 10_000);
      const report = JSON.parse(rep.match[1]!) as KindlingVmReport;
      sample.selfExitCounts = report.exitCounts;
      const phases = [...proc.text.matchAll(/BENCH_PHASES ([^\r\n]*)/g)].map((m) => m[1]);
      const since = (ns: string): string => (ns === '0' ? '?' : `${nsToMs(BigInt(ns) - BigInt(started[1]!)).toFixed(0)} ms`);
      if (phases.length) sample.phases = `${phases.join('; ')}; start() resolved ${since(report.startedNs)}, first console byte ${since(report.firstConsoleNs)}`;
      sample.selfExits = report.exitCounts.reduce((n, c) => n + c.ioIn + c.ioOut + c.mmioRead + c.mmioWrite + c.other, 0);
    }
    // Kindling's child prints its BENCH_KINDLING line as soon as it sees the marker, which
    // can land inside the marker line.
    const uptime = await proc.waitFor(new RegExp(`${GUEST_MARKER}(?:\\s*\\nBENCH_KINDLING [^\\n]*\\n)?\\s*([0-9.]+)\\s`), 10_000).catch(() => undefined);
    if (uptime) sample.guestUptimeS = Number(uptime.match[1]);
    if (until) {
      const at = proc.text.indexOf(GUEST_MARKER);
      if (midway) {
        await proc.waitFor(midway, ctx.timeoutMs);
        sample.cpuToMidway = cpuSince(cpuAtMarker, proc.pid);
        const kvmMid = ctx.stats.vmStats(proc.pid);
        if (kvm && kvmMid) sample.kvmToMidway = kvmDelta(kvm, kvmMid);
      }
      await proc.waitFor(until, ctx.timeoutMs);
      sample.console = proc.text.slice(at);
      sample.cpuAfterMarker = cpuSince(cpuAtMarker, proc.pid);
      const kvmEnd = ctx.stats.vmStats(proc.pid);
      if (kvm && kvmEnd) sample.kvmAfterMarker = kvmDelta(kvm, kvmEnd);
    }
    return sample;
  } finally {
    await proc.kill();
  }
}
