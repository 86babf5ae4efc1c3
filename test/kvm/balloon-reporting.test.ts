/**
 * Free page reporting under real KVM, one boot of the minimal kernel (CONFIG_PAGE_REPORTING=y:
 * virtio_balloon selects it), 256 MiB, balloon target 0. The guest fills 150 MiB of tmpfs and
 * frees it; without any PATCH, its page-reporting worker (a couple of seconds after the pages
 * come free, in blocks of pageblock order: 4 MiB on this kernel) reports them and the host
 * releases them: the memfd's allocated blocks fall by ≥ 100 MiB. Numbers are printed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fstatSync } from 'node:fs';
import { MicroVm } from 'kindling';
import { fixture, testBootArgs, ConsoleLog } from '../helpers/guest.js';

const MiB = 1024 * 1024;
const FILL_MIB = 150;
const SCRIPT = [
  'mkdir -p /mnt/t && mount -t tmpfs -o size=240m tmpfs /mnt/t',
  'echo BOOTED',
  `dd if=/dev/zero of=/mnt/t/fill bs=1M count=${FILL_MIB} 2>/dev/null; echo FILLED`,
  'read x; rm /mnt/t/fill; echo FREED',
  'read x; echo DONE',
].join('; ');

test('minimal-kernel guest: 150 MiB freed in the guest come back to the host through free page reporting', async () => {
  const vm = new MicroVm({
    'boot-source': { kernel_image_path: fixture('vmlinux-6.1-mini'), initrd_path: fixture('guest-initrd.cpio.gz'), boot_args: testBootArgs(`"${SCRIPT}"`) },
    'machine-config': { vcpu_count: 1, mem_size_mib: 256 },
    balloon: { amount_mib: 0, deflate_on_oom: false, free_page_reporting: true },
  }, { log: () => {} });
  const con = new ConsoleLog(vm.console);
  const held = (): number => fstatSync(vm.memory.memfd).blocks * 512;
  await vm.start();
  try {
    await con.waitFor(/FILLED/, 240_000);
    const filled = held();
    vm.writeConsole('go\n');
    await con.waitFor(/FREED/, 60_000);
    const t0 = performance.now();
    let now = held();
    while (filled - now < 100 * MiB && performance.now() - t0 < 60_000) {
      await new Promise((r) => setTimeout(r, 500));
      now = held();
    }
    const secs = (performance.now() - t0) / 1000;
    const m = vm.balloonMetrics!;
    console.log(`\n    host memfd ${(filled / MiB).toFixed(1)} MiB filled → ${(now / MiB).toFixed(1)} MiB ${secs.toFixed(1)} s after the guest freed ${FILL_MIB} MiB; ` +
      `free_page_report_count ${m.free_page_report_count}, freed ${(m.free_page_report_freed / MiB).toFixed(1)} MiB, fails ${m.free_page_report_fails}`);
    assert.ok(filled - now >= 100 * MiB, `the host got ≥ 100 MiB back without a PATCH (${((filled - now) / MiB).toFixed(1)} MiB)`);
    assert.is(m.free_page_report_fails, 0);
    vm.writeConsole('go\n');
    await con.waitFor(/KINDLING_EXIT=0/, 60_000);
  } finally {
    if (vm.state !== 'Exited') await vm.stop();
  }
});

test.run();
