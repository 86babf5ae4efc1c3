/**
 * The balloon under real KVM, one boot of the minimal kernel (CONFIG_VIRTIO_BALLOON=y in its
 * config), 256 MiB, deflate_on_oom, statistics every second. The guest script waits on its
 * console between steps; the host drives the balloon through the library (the same
 * controller actions as PATCH /balloon and GET /balloon/statistics) and measures the host
 * memory held for the guest as the memfd's allocated blocks (fstat st_blocks: shmem pages
 * the file holds, whatever this process has mapped):
 *   1. the guest fills 150 MiB of tmpfs and frees it: the host still holds those pages;
 *   2. PATCH amount_mib 150: the guest's MemAvailable drops by ≥ 100 MiB and the memfd gives
 *      back ≥ 100 MiB (MADV_REMOVE: docs/design.md "Balloon");
 *   3. GET /balloon/statistics: the guest's own numbers (total, free, available memory);
 *   4. PATCH amount_mib 0: the guest gets its memory back (MemAvailable recovers);
 *   5. deflate_on_oom: with a 180 MiB balloon the guest writes 100 MiB to tmpfs anyway, the
 *      balloon shrinking under it instead of the OOM killer stepping in.
 * Numbers are printed. In the QEMU sandbox (nested, TCG) every step takes seconds.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fstatSync } from 'node:fs';
import { MicroVm } from 'kindling';
import { fixture, testBootArgs, ConsoleLog } from '../helpers/guest.js';

const MiB = 1024 * 1024;
const MEM_MIB = 256;
const FILL_MIB = 150;
const OOM_BALLOON_MIB = 180;
const OOM_WRITE_MIB = 100;

const avail = "$(grep MemAvailable /proc/meminfo | tr -s ' ' | cut -d' ' -f2)";
const SCRIPT = [
  'mkdir -p /mnt/t && mount -t tmpfs -o size=240m tmpfs /mnt/t',
  `echo MEM0 ${avail} $(grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2)`,
  `dd if=/dev/zero of=/mnt/t/fill bs=1M count=${FILL_MIB} 2>/dev/null; echo FILLED ${avail}`,
  `rm /mnt/t/fill; echo FREED ${avail}`,
  `read x; echo INFLATED ${avail}`,
  `read x; echo DEFLATED ${avail}`,
  `read x; dd if=/dev/zero of=/mnt/t/big bs=1M count=${OOM_WRITE_MIB} 2>/dev/null; echo OOM_DD $? $(du -m /mnt/t/big | cut -f1) ${avail}`,
].join('; ');

/** Bytes the memfd holds (st_blocks are 512-byte units). */
function held(vm: MicroVm): number {
  return fstatSync(vm.memory.memfd).blocks * 512;
}

const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

/** Polls until `f` is true (rejects after `ms`). */
async function until(what: string, f: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await f()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

test('minimal-kernel guest: inflating 150 MiB returns ≥ 100 MiB of host memory, stats, deflate, deflate_on_oom', async () => {
  const vm = new MicroVm({
    'boot-source': { kernel_image_path: fixture('vmlinux-6.1-mini'), initrd_path: fixture('guest-initrd.cpio.gz'), boot_args: testBootArgs(`"${SCRIPT}"`) },
    'machine-config': { vcpu_count: 1, mem_size_mib: MEM_MIB },
    balloon: { amount_mib: 0, deflate_on_oom: true, stats_polling_interval_s: 1 },
  }, { log: () => {} });
  const con = new ConsoleLog(vm.console);
  await vm.start();
  try {
    assert.ok(vm.memory.memfd >= 0, 'a booted VM runs on the memfd');
    const m0 = await con.waitFor(/MEM0 (\d+) (\d+)\s/, 240_000);
    const memTotalKb = Number(m0[2]);
    const boot = held(vm);
    const filled = await con.waitFor(/FILLED (\d+)\s/, 240_000);
    const afterFill = held(vm);
    const freed = await con.waitFor(/FREED (\d+)\s/, 60_000);
    const afterFree = held(vm);
    console.log(`\n    host memfd: ${mib(boot)} booted, ${mib(afterFill)} after the guest filled ${FILL_MIB} MiB, ${mib(afterFree)} after it freed them`);
    console.log(`    guest MemAvailable: ${m0[1]} kB, ${filled[1]} kB filled, ${freed[1]} kB freed (MemTotal ${memTotalKb} kB)`);
    assert.ok(afterFill - boot >= 100 * MiB, 'the fill reached host memory');
    assert.ok(afterFree - boot >= 100 * MiB, 'freeing inside the guest returns nothing to the host');

    // 2. Inflate.
    const t0 = performance.now();
    await vm.updateBalloon(FILL_MIB);
    await until('the balloon to reach 150 MiB', async () => (await vm.balloonStats()).actual_mib >= FILL_MIB, 300_000);
    const inflateSecs = (performance.now() - t0) / 1000;
    const afterInflate = held(vm);
    vm.writeConsole('go\n');
    const inflated = await con.waitFor(/INFLATED (\d+)\s/, 60_000);
    const bm = vm.balloonMetrics!;
    console.log(`    inflate to ${FILL_MIB} MiB in ${inflateSecs.toFixed(1)} s: host memfd ${mib(afterFree)} → ${mib(afterInflate)} (−${mib(afterFree - afterInflate)}); ` +
      `guest MemAvailable ${freed[1]} → ${inflated[1]} kB; pages_discarded ${bm.pages_discarded}, inflate_count ${bm.inflate_count}, bad_pfns ${bm.bad_pfns}`);
    assert.ok(afterFree - afterInflate >= 100 * MiB, `the host got ≥ 100 MiB back (${mib(afterFree - afterInflate)})`);
    assert.ok((Number(freed[1]) - Number(inflated[1])) * 1024 >= 100 * MiB, 'the guest MemAvailable dropped by ≥ 100 MiB');
    assert.ok(bm.pages_discarded >= FILL_MIB * 256, `pages_discarded ${bm.pages_discarded}`);
    assert.is(bm.bad_pfns, 0);
    assert.is(bm.discard_fails, 0);

    // 3. Statistics (polled every second by the device).
    await until('statistics from the guest', async () => (await vm.balloonStats()).total_memory !== undefined, 30_000);
    const s = await vm.balloonStats();
    console.log(`    GET /balloon/statistics: ${JSON.stringify(s)}`);
    assert.is(s.target_mib, FILL_MIB);
    assert.ok(s.actual_mib >= FILL_MIB);
    assert.is(s.total_memory, memTotalKb * 1024, 'total_memory is the guest\'s MemTotal');
    assert.ok((s.free_memory ?? 0) > 0 && (s.available_memory ?? 0) > 0);
    assert.ok(bm.stats_updates_count >= 1);

    // 4. Deflate.
    await vm.updateBalloon(0);
    await until('the balloon to empty', async () => (await vm.balloonStats()).actual_pages === 0, 300_000);
    vm.writeConsole('go\n');
    const deflated = await con.waitFor(/DEFLATED (\d+)\s/, 60_000);
    const afterDeflate = held(vm);
    console.log(`    deflate to 0: guest MemAvailable ${inflated[1]} → ${deflated[1]} kB; host memfd ${mib(afterDeflate)} (pages come back as the guest touches them)`);
    assert.ok((Number(deflated[1]) - Number(inflated[1])) * 1024 >= 100 * MiB, 'the guest got its memory back');

    // 5. deflate_on_oom: the balloon gives way under memory pressure.
    await vm.updateBalloon(OOM_BALLOON_MIB);
    let last = -1;
    let stable = 0;
    await until('the balloon to stop growing', async () => {
      const a = (await vm.balloonStats()).actual_mib;
      stable = a === last ? stable + 1 : 0;
      last = a;
      return a >= OOM_BALLOON_MIB || stable >= 6;
    }, 300_000);
    const before = (await vm.balloonStats()).actual_mib;
    vm.writeConsole('go\n');
    const oom = await con.waitFor(/OOM_DD (\d+) (\d+) (\d+)\s/, 600_000);
    const after = (await vm.balloonStats()).actual_mib;
    console.log(`    deflate_on_oom: balloon ${before} MiB, guest wrote ${oom[2]} MiB to tmpfs (dd status ${oom[1]}), balloon now ${after} MiB`);
    assert.ok(before >= 150, `the balloon held ${before} MiB before the write`);
    assert.is(Number(oom[1]), 0, 'dd succeeded');
    assert.is(Number(oom[2]), OOM_WRITE_MIB);
    assert.ok(after < before, 'the guest took pages back from the balloon');
    await con.waitFor(/KINDLING_EXIT=0/, 60_000);
  } finally {
    if (vm.state !== 'Exited') await vm.stop();
  }
});

test.run();
