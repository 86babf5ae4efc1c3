/**
 * One Kindling microVM per process, for the benchmark (a fresh process per run, so RSS is
 * per VM). It is what `kindling --config-file x.json --no-api` does, through the library,
 * plus three lines on stdout the harness (bench/scenarios/boot.ts) reads:
 *
 *   BENCH_INSTANCE_START <ns>   monotonic time just before vm.start() (InstanceStart), once
 *                               MicroVm.prewarm has loaded the builder (its actor workers go
 *                               on loading on their threads), as the API process does after
 *                               its socket listens (KvmVmFactory.warmUp). Process start →
 *                               marker still counts all of it.
 *   ...the guest's serial console, verbatim...
 *   BENCH_KINDLING <json>       right after the console showed the marker: Kindling's own
 *                               per-vCPU exit counters at that moment, and the marker time
 *
 *   node dist/bench/kindling-vm.js '<json KindlingVmArgs>'
 *
 * The VM runs until killed (the guest idles in `sleep`) or until the guest reboots.
 */
import { MicroVm, type MicroVmConfig } from 'kindling';

/** What the harness passes as argv[2] (JSON). */
export interface KindlingVmArgs {
  kernel: string;
  initrd: string;
  bootArgs: string;
  vcpus: number;
  memMiB: number;
  /** Console text that ends the boot measurement. */
  marker: string;
  drives?: MicroVmConfig['drives'];
  nets?: MicroVmConfig['network-interfaces'];
  vsock?: MicroVmConfig['vsock'];
  /** Devices on virtio-pci (`--enable-pci`) instead of virtio-mmio. */
  enablePci?: boolean;
  /** virtio-fs devices (PUT /fs bodies). */
  fs?: MicroVmConfig['fs'];
}

/** The BENCH_KINDLING payload. */
export interface KindlingVmReport {
  instanceStartNs: string;
  /** When `vm.start()` resolved (the vCPUs run); 0 if the marker came first. */
  startedNs: string;
  /** When the guest's first console byte arrived (0: none yet). */
  firstConsoleNs: string;
  markerNs: string;
  /** Per vCPU: exits handled in userspace, by kind (MicroVm.exitCounts). */
  exitCounts: { ioIn: number; ioOut: number; mmioRead: number; mmioWrite: number; other: number }[];
  /** vCPU actors (worker threads). */
  vcpuActors: number;
}

async function main(): Promise<void> {
  // The harness stops a profiled run (KINDLING_BENCH_CPU_PROF) with SIGTERM: exiting through
  // process.exit lets V8 write the --cpu-prof profiles, which a default SIGTERM death skips.
  process.once('SIGTERM', () => process.exit(0));
  const args = JSON.parse(process.argv[2] ?? '') as KindlingVmArgs;
  // No wait beyond the main thread's modules: process start → marker stays the whole cost.
  await MicroVm.prewarm({ vcpus: args.vcpus, drives: args.drives?.length ?? 0, nets: args.nets?.length ?? 0, vsock: !!args.vsock });
  const config: MicroVmConfig = {
    'boot-source': { kernel_image_path: args.kernel, initrd_path: args.initrd, boot_args: args.bootArgs },
    'machine-config': { vcpu_count: args.vcpus, mem_size_mib: args.memMiB },
    ...(args.drives ? { drives: args.drives } : {}),
    ...(args.nets ? { 'network-interfaces': args.nets } : {}),
    ...(args.vsock ? { vsock: args.vsock } : {}),
    ...(args.enablePci ? { enablePci: true } : {}),
    ...(args.fs ? { fs: args.fs } : {}),
  };
  const vm = new MicroVm(config, {
    log: (level, msg) => {
      if (level !== 'info') process.stderr.write(`kindling ${level}: ${msg}\n`);
      // Where InstanceStart's time went (src/vmm/builder.ts), for the boot scenario's log.
      else if (/^(instance start|microVM build) \(cumulative\)/.test(msg)) process.stdout.write(`\nBENCH_PHASES ${msg}\n`);
    },
  });
  let seen = '';
  let reported = false;
  let instanceStartNs = 0n;
  let startedNs = 0n;
  let firstByteNs = 0n;
  vm.console.on('data', (b: Buffer) => {
    if (firstByteNs === 0n) firstByteNs = process.hrtime.bigint();
    process.stdout.write(b);
    if (reported) return;
    seen = (seen + b.toString('latin1')).slice(-4096);
    if (!seen.includes(args.marker)) return;
    reported = true;
    const report: KindlingVmReport = {
      instanceStartNs: instanceStartNs.toString(),
      startedNs: startedNs.toString(),
      firstConsoleNs: firstByteNs.toString(),
      markerNs: process.hrtime.bigint().toString(),
      exitCounts: vm.exitCounts,
      vcpuActors: vm.exitCounts.length,
    };
    process.stdout.write(`\nBENCH_KINDLING ${JSON.stringify(report)}\n`);
  });
  instanceStartNs = process.hrtime.bigint();
  process.stdout.write(`BENCH_INSTANCE_START ${instanceStartNs}\n`);
  await vm.start();
  startedNs = process.hrtime.bigint();
  const exit = await vm.exit;
  process.exit(exit.code);
}

main().catch((e: Error) => {
  process.stderr.write(`kindling-vm: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
