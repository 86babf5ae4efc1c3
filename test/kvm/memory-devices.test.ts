/**
 * Memory hotplug (virtio-mem) and virtio-pmem under real KVM, one boot of Firecracker's CI
 * guest kernel (vmlinux-6.1-fc: CONFIG_VIRTIO_MEM=y, CONFIG_MEMORY_HOTPLUG=y,
 * CONFIG_VIRTIO_PMEM=y, CONFIG_BLK_DEV_PMEM=y; devices described by ACPI), with both devices
 * (docs/design.md "Memory hotplug", "Persistent memory"):
 *
 *   - the guest starts with 256 MiB and a 512 MiB hotplug region, nothing plugged; sizes the
 *     device refuses (not a multiple of the block size, past the total) get Firecracker's text;
 *     PATCH requested_size_mib 256 → the guest plugs 256 MiB and MemTotal grows by that much
 *     (memhp_default_state=online_movable onlines it); GET reports plugged 256;
 *   - the guest fills and frees 320 MiB of tmpfs (some of it lands in the hotplugged blocks);
 *   - PATCH 128 → the guest unplugs 128 MiB and MemTotal shrinks by that much; GET says 128;
 *     the unplugged blocks are discarded: the guest-RAM memfd holds less than before;
 *   - an ext4 image is the guest's /dev/pmem0: mounted, a file written, synced (the pmem
 *     driver's flush becomes a FLUSH request → msync in the device worker), unmounted;
 *     after the VM ends the host reads the file out of the image with debugfs;
 *   - a second, read-only image (/dev/pmem1, a KVM_MEM_READONLY slot, 3 MiB so its window has
 *     an anonymous tail) is mounted ro and read; its file on the host is unchanged.
 * The metrics file's last line shows the requests: plug/unplug counts, the pmem queue events.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MicroVm } from 'kindling';
import { createMetrics } from '../../src/metrics/metrics.js';
import { fixture, testBootArgs, ConsoleLog } from '../helpers/guest.js';

const KiB_PER_MiB = 1024;
const MiB = 1024 * 1024;
/** Bytes the guest-RAM memfd holds (st_blocks are 512-byte units), hotplug region included. */
const held = (vm: MicroVm): number => fstatSync(vm.memory.memfd).blocks * 512;
const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;
const dir = mkdtempSync(join(tmpdir(), 'kindling-memdev-'));
const image = join(dir, 'pmem.ext4');
const roImage = join(dir, 'pmem-ro.ext4');
const TEXT = 'kindling-pmem-42';

// Kept short: the script rides on the kernel command line (2048 bytes with the device args).
// mt: MemTotal in KiB; wt OP N: wait (≤ 180 s) while MemTotal OP N holds. The guest plugs and
// unplugs in steps (memory blocks, subblocks), so it waits for nearly the whole change, then a
// little more for the last step, before it reports.
const SCRIPT = [
  "mt(){ awk '/MemTotal/{print $2}' /proc/meminfo; }",
  'wt(){ i=0; while [ $(mt) $1 $2 ] && [ $i -lt 900 ]; do sleep 0.2; i=$((i+1)); done; sleep 2; }',
  'a=$(mt); echo MEM0 $a; wt -lt $((a+240*1024)); b=$(mt); echo MEM1 $b',
  // Use the new memory (tmpfs pages are movable, so they may go to the hotplugged blocks), free it.
  'mkdir /tmp/f; mount -t tmpfs -o size=400m f /tmp/f; dd if=/dev/zero of=/tmp/f/x bs=1M count=320 2>/dev/null; rm /tmp/f/x; umount /tmp/f; echo FILLED',
  'wt -gt $((b-112*1024)); echo MEM2 $(mt)',
  `mount -t ext4 /dev/pmem0 /mnt && echo ${TEXT} > /mnt/hello && sync && umount /mnt && echo PMEM_DONE`,
  'mkdir /tmp/r; mount -t ext4 -o ro,noload /dev/pmem1 /tmp/r && echo RO_$(cat /tmp/r/ro.txt)',
].join('; ');

test('fc guest: PATCH /hotplug/memory grows and shrinks MemTotal; an ext4 pmem0 is written and the host finds the write', async () => {
  const mk = spawnSync('mke2fs', ['-q', '-t', 'ext4', '-F', image, '64M'], { encoding: 'utf8' });
  assert.is(mk.status, 0, `mke2fs: ${mk.stderr}`);
  // A read-only device of 3 MiB (not a multiple of 2 MiB: the window gets an anonymous tail).
  mkdirSync(join(dir, 'ro'));
  writeFileSync(join(dir, 'ro', 'ro.txt'), 'kindling-readonly\n');
  const mkro = spawnSync('mke2fs', ['-q', '-t', 'ext4', '-F', '-d', join(dir, 'ro'), roImage, '3M'], { encoding: 'utf8' });
  assert.is(mkro.status, 0, `mke2fs: ${mkro.stderr}`);
  const roBefore = readFileSync(roImage);
  const metrics = createMetrics();
  const metricsPath = join(dir, 'metrics.ndjson');
  metrics.init({ metrics_path: metricsPath, emit_id: false, properties: null }, 'kindling-memdev-test');
  const vm = new MicroVm({
    'boot-source': {
      kernel_image_path: fixture('vmlinux-6.1-fc'), initrd_path: fixture('guest-initrd.cpio.gz'),
      boot_args: testBootArgs(`"${SCRIPT}"`, 'memhp_default_state=online_movable'),
    },
    'machine-config': { vcpu_count: 1, mem_size_mib: 256 },
    pmem: [{ id: 'pmem0', path_on_host: image }, { id: 'pmem1', path_on_host: roImage, read_only: true }],
    'memory-hotplug': { total_size_mib: 512 },
  }, { log: () => {}, metrics });
  const con = new ConsoleLog(vm.console);
  await vm.start();
  try {
    const m0 = Number((await con.waitFor(/MEM0 (\d+)\s/, 240_000))[1]);
    assert.equal(await vm.memoryHotplugStatus(), { total_size_mib: 512, slot_size_mib: 128, block_size_mib: 2, plugged_size_mib: 0, requested_size_mib: 0 });
    // A size the device refuses is answered with Firecracker's text and changes nothing.
    for (const bad of [3, 1024]) {
      const e = await vm.updateMemoryHotplug(bad).then(() => null, (x: Error) => x);
      assert.is(e?.message, `Memory hotplug update error: Failed to create memory hotplug device: Size ${bad * 1024 * 1024} is invalid: ` +
        'it must be a multiple of block size and less than the total size');
    }
    assert.is((await vm.memoryHotplugStatus()).requested_size_mib, 0);
    const t0 = performance.now();
    await vm.updateMemoryHotplug(256);
    const m1 = Number((await con.waitFor(/MEM1 (\d+)\s/, 240_000))[1]);
    const plugSecs = (performance.now() - t0) / 1000;
    const grown = (m1 - m0) / KiB_PER_MiB;
    assert.ok(grown >= 250 && grown <= 256, `MemTotal grew by ${grown} MiB (${m0} → ${m1} KiB)${con.text.slice(-1500)}`);
    const s1 = await vm.memoryHotplugStatus();
    assert.is(s1.plugged_size_mib, 256);
    assert.is(s1.requested_size_mib, 256);

    await con.waitFor(/FILLED/, 120_000);
    const beforeUnplug = held(vm);
    const t1 = performance.now();
    await vm.updateMemoryHotplug(128);
    const m2 = Number((await con.waitFor(/MEM2 (\d+)\s/, 240_000))[1]);
    const unplugSecs = (performance.now() - t1) / 1000;
    const shrunk = (m1 - m2) / KiB_PER_MiB;
    assert.ok(shrunk >= 120 && shrunk <= 128, `MemTotal shrank by ${shrunk} MiB (${m1} → ${m2} KiB)${con.text.slice(-1500)}`);
    const s2 = await vm.memoryHotplugStatus();
    assert.is(s2.plugged_size_mib, 128);
    const afterUnplug = held(vm);
    console.log(`\n    MemTotal ${m0} → ${m1} → ${m2} KiB; plug 256 MiB seen in ${plugSecs.toFixed(1)} s, unplug 128 MiB in ${unplugSecs.toFixed(1)} s`);
    console.log(`    host memfd: ${mib(beforeUnplug)} after the guest filled and freed 320 MiB, ${mib(afterUnplug)} after the unplug`);
    // The unplugged blocks were discarded (holes punched in the memfd): the host holds less.
    assert.ok(afterUnplug < beforeUnplug - 8 * MiB, `the unplug gave memory back to the host: ${mib(beforeUnplug)} → ${mib(afterUnplug)}`);

    await con.waitFor(/PMEM_DONE/, 120_000);
    assert.match((await con.waitFor(/RO_(\S*)\s/, 60_000))[1]!, /^kindling-readonly$/, 'the read-only device reads back');
    const { code } = await vm.exit;
    assert.is(code, 0, 'the guest rebooted');
    const cat = spawnSync('debugfs', ['-R', 'cat /hello', image], { encoding: 'utf8' });
    assert.is(cat.status, 0, cat.stderr);
    assert.is(cat.stdout.trim(), TEXT, 'the guest\'s write is in the backing file');
    assert.ok(readFileSync(roImage).equals(roBefore), 'the read-only backing file is unchanged');

    // Counters are written as deltas per flush: add up every line.
    const sum = (group: string, field: string): number => readFileSync(metricsPath, 'utf8').trim().split('\n')
      .map((l) => (JSON.parse(l) as Record<string, Record<string, unknown>>)[group]?.[field])
      .reduce<number>((n, v) => n + (typeof v === 'number' ? v : 0), 0);
    const hp = (f: string): number => sum('memory_hotplug', f);
    console.log(`    memory_hotplug: plug_count ${hp('plug_count')}, unplug_count ${hp('unplug_count')}, state_count ${hp('state_count')}; ` +
      `pmem_pmem0: queue_event_count ${sum('pmem_pmem0', 'queue_event_count')}`);
    assert.ok(hp('plug_count') >= 1 && hp('plug_bytes') >= 256 * MiB, 'plug requests counted');
    assert.ok(hp('unplug_bytes') >= 128 * MiB, 'unplug requests counted');
    assert.is(hp('plug_fails'), 0);
    assert.ok(sum('pmem_pmem0', 'queue_event_count') >= 1, 'the guest flushed the pmem device');
    assert.is(sum('pmem_pmem0', 'event_fails'), 0);
  } finally {
    if (vm.state !== 'Exited') await vm.stop();
    metrics.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
