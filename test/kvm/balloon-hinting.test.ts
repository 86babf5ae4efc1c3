/**
 * Free page hinting under real KVM, one boot of the minimal kernel, 256 MiB, balloon target 0,
 * free_page_hinting. The guest fills 150 MiB of tmpfs and frees it; PATCH
 * /balloon/hinting/start (acknowledge_on_stop) makes its driver hint every free block it can
 * take (4 MiB each), which the host releases, then say STOP; the device answers DONE and the
 * guest takes its pages back. GET /balloon/hinting/status shows the round, the memfd's
 * allocated blocks fall by ≥ 100 MiB, and the guest runs on. Numbers are printed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fstatSync } from 'node:fs';
import { MicroVm } from 'kindling';
import { fixture, testBootArgs, ConsoleLog } from '../helpers/guest.js';

const MiB = 1024 * 1024;
const FILL_MIB = 150;
const avail = "$(grep MemAvailable /proc/meminfo | tr -s ' ' | cut -d' ' -f2)";
const SCRIPT = [
  'mkdir -p /mnt/t && mount -t tmpfs -o size=240m tmpfs /mnt/t',
  `dd if=/dev/zero of=/mnt/t/fill bs=1M count=${FILL_MIB} 2>/dev/null; rm /mnt/t/fill; echo FREED ${avail}`,
  `read x; echo AFTER ${avail}`,
].join('; ');

test('minimal-kernel guest: a hinting run returns ≥ 100 MiB of freed guest memory to the host, STOP answered with DONE', async () => {
  const vm = new MicroVm({
    'boot-source': { kernel_image_path: fixture('vmlinux-6.1-mini'), initrd_path: fixture('guest-initrd.cpio.gz'), boot_args: testBootArgs(`"${SCRIPT}"`) },
    'machine-config': { vcpu_count: 1, mem_size_mib: 256 },
    balloon: { amount_mib: 0, deflate_on_oom: false, free_page_hinting: true },
  }, { log: () => {} });
  const con = new ConsoleLog(vm.console);
  const held = (): number => fstatSync(vm.memory.memfd).blocks * 512;
  await vm.start();
  try {
    const freed = await con.waitFor(/FREED (\d+)\s/, 240_000);
    const before = held();
    assert.equal(await vm.balloonHintingStatus(), { host_cmd: 1, guest_cmd: null }, 'no run yet');
    const t0 = performance.now();
    await vm.startBalloonHinting();
    let st = await vm.balloonHintingStatus();
    // The run may already be over when the first status is read (a fast guest hints and says
    // STOP in well under the time a GET takes in the sandbox): command 2 in progress, or done.
    assert.ok(st.host_cmd === 2 || (st.host_cmd === 1 && st.guest_cmd === 0),
      `the first run is command 2 (0 STOP and 1 DONE are reserved), in progress or done: ${JSON.stringify(st)}`);
    while (!(st.guest_cmd === 0 && st.host_cmd === 1) && performance.now() - t0 < 120_000) {
      await new Promise((r) => setTimeout(r, 250));
      st = await vm.balloonHintingStatus();
    }
    const secs = (performance.now() - t0) / 1000;
    const after = held();
    const m = vm.balloonMetrics!;
    console.log(`\n    hinting run in ${secs.toFixed(1)} s: status ${JSON.stringify(st)}; host memfd ${(before / MiB).toFixed(1)} → ${(after / MiB).toFixed(1)} MiB; ` +
      `free_page_hint_count ${m.free_page_hint_count}, freed ${(m.free_page_hint_freed / MiB).toFixed(1)} MiB, fails ${m.free_page_hint_fails}`);
    assert.equal(st, { host_cmd: 1, guest_cmd: 0 }, 'the guest said STOP and the device answered DONE');
    assert.ok(before - after >= 100 * MiB, `the host got ≥ 100 MiB back (${((before - after) / MiB).toFixed(1)} MiB)`);
    assert.is(m.free_page_hint_fails, 0);
    vm.writeConsole('go\n');
    const back = await con.waitFor(/AFTER (\d+)\s/, 60_000);
    console.log(`    guest MemAvailable ${freed[1]} kB before, ${back[1]} kB after the run (the hinted pages are the guest's again)`);
    assert.ok(Number(back[1]) > Number(freed[1]) - 20 * 1024, 'the guest got its hinted pages back after DONE');
    await con.waitFor(/KINDLING_EXIT=0/, 60_000);
  } finally {
    if (vm.state !== 'Exited') await vm.stop();
  }
});

test.run();
