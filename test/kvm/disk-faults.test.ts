/**
 * Disk faults under a running Linux guest (issue 12 item 4), one boot of the minimal kernel
 * with six drives:
 *
 *   vda full_sync   Sync engine   sparse file on a 4 MiB tmpfs        } ENOSPC when the tmpfs
 *   vdb full_async  Async engine  sparse file on the same tmpfs       } fills
 *   vdc eio_sync    Sync engine   device-mapper disk over loop+file   } EIO when the table is
 *   vdd eio_async   Async engine  device-mapper disk over loop+file   } swapped for `error`
 *   vde witness     Sync engine   plain file: must work throughout
 *   vdf script      read-only     the guest's script (sh /dev/vdf), too long for the cmdline
 *
 * Every data drive uses cache_type Writeback, so the guest's fsync reaches the host as FLUSH.
 * The guest writes 64 KiB to each drive with O_DIRECT + fsync first (acknowledged data), then
 * fills the tmpfs (ENOSPC), rewrites its acknowledged region (allocated pages still take
 * writes on a full filesystem), and, after the host swaps both dm tables to `error`, reads and
 * writes the dm drives. The guest and host meet at `WAIT_<step>` lines: the guest blocks in
 * `read` on its console until the host, having injected the next fault, types a newline.
 *
 * Asserted: the guest sees the errors (non-zero dd status, kernel I/O error lines), the VMM
 * answers them with VIRTIO_BLK_S_IOERR (invalid_reqs_count), the witness and the library
 * (pause/resume, PATCH) keep working, data acknowledged after a flush is in the host files
 * (for the dm drives, in the loop's backing file, i.e. past the host page cache of the device),
 * and healed dm drives read back their acknowledged data.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MicroVm } from 'kindling';
import { createMetrics } from '../../src/metrics/metrics.js';
import { fixture, testBootArgs, ConsoleLog, withTimeout } from '../helpers/guest.js';
import { FaultyDisk, SmallFs } from '../helpers/disk-faults.js';

const MiB = 1024 * 1024;
const ACK_BYTES = 64 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'kindling-faults-'));
const DATA = ['vda', 'vdb', 'vdc', 'vdd', 'vde'] as const;

/** What `yes WORD | head -c N` prints in the guest. */
const yes = (word: string, n = ACK_BYTES): Buffer => Buffer.from(`${word}\n`.repeat(Math.ceil(n / (word.length + 1)))).subarray(0, n);

/** The guest's script. Busybox sh; dd statuses are printed, never acted on. */
const SCRIPT = `
wait_host() { echo "WAIT_$1"; read -r _; }
sz() { cat /sys/block/$1/size; }
echo "SIZES $(sz vda) $(sz vdb) $(sz vdc) $(sz vdd) $(sz vde)"
for d in ${DATA.join(' ')}; do
  yes ACK_$d | head -c ${ACK_BYTES} > /tmp/ack_$d
  dd if=/tmp/ack_$d of=/dev/$d bs=${ACK_BYTES} count=1 oflag=direct conv=fsync 2>/dev/null; r="$r $?"
done
echo "ACKED$r"
wait_host ACKED
dd if=/dev/zero of=/dev/vda bs=64k seek=1 count=127 oflag=direct 2>/dev/null; f1=$?
dd if=/dev/zero of=/dev/vdb bs=64k seek=1 count=127 oflag=direct 2>/dev/null; f2=$?
for d in vda vdb; do
  yes ACK2_$d | head -c ${ACK_BYTES} > /tmp/ack2_$d
  dd if=/tmp/ack2_$d of=/dev/$d bs=${ACK_BYTES} count=1 oflag=direct conv=fsync 2>/dev/null; w="$w $?"
done
echo "FULL $f1 $f2 REWRITE$w"
wait_host FULL
dd if=/dev/zero of=/dev/vdb bs=64k seek=1 count=4 oflag=direct conv=fsync 2>/dev/null; echo "FREED $?"
wait_host EIO
for d in vdc vdd; do
  dd if=/dev/$d of=/dev/null bs=4k count=4 skip=32 iflag=direct 2>/dev/null; e="$e $?"
  dd if=/tmp/ack_$d of=/dev/$d bs=4k count=1 seek=64 oflag=direct conv=fsync 2>/dev/null; e="$e $?"
done
yes WITNESS | head -c 4096 > /tmp/wit
dd if=/tmp/wit of=/dev/vde bs=4k count=1 seek=8 oflag=direct conv=fsync 2>/dev/null && dd if=/dev/vde bs=4k count=1 skip=8 iflag=direct 2>/dev/null | cmp -s - /tmp/wit
echo "EIO$e WITNESS $?"
wait_host HEAL
for d in vdc vdd; do dd if=/dev/$d bs=${ACK_BYTES} count=1 iflag=direct 2>/dev/null | cmp -s - /tmp/ack_$d; h="$h $?"; done
echo "HEALED$h KERNEL_IO_ERRORS $(dmesg | grep -c 'I/O error')"
`;

/**
 * The numbers after `label` on its console line. A timeout carries `diag()`: the drives' and
 * the UART's counters tell a request the VMM never completed from input the guest never read.
 */
async function line(con: ConsoleLog, label: string, diag: () => string, ms = 180_000): Promise<number[]> {
  let m: RegExpMatchArray;
  try {
    m = await con.waitFor(new RegExp(`\\n${label}((?: [A-Z_]*\\s*-?\\d+)+)\\s*\\n`), ms);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${diag()}`);
  }
  return m[1]!.trim().split(/\s+/).filter((w) => /^-?\d+$/.test(w)).map(Number);
}

test('ENOSPC and EIO under a running guest: errors reach the guest, acknowledged data is on the host', async () => {
  const t0 = performance.now();
  const small = SmallFs.mount(join(dir, 'small'), 4 * MiB);
  const dm: FaultyDisk[] = [];
  const metrics = createMetrics();
  let vm: MicroVm | undefined;
  try {
    const full = ['full_sync', 'full_async'].map((n) => small.file(`${n}.img`, 8 * MiB, new Uint8Array(0)));
    small.ballast(1 * MiB);
    dm.push(FaultyDisk.create(`kindling-eio-sync-${process.pid}`, join(dir, 'eio-sync.img'), 4 * MiB));
    dm.push(FaultyDisk.create(`kindling-eio-async-${process.pid}`, join(dir, 'eio-async.img'), 4 * MiB));
    const witness = join(dir, 'witness.img');
    writeFileSync(witness, Buffer.alloc(4 * MiB));
    const script = join(dir, 'script.img');
    writeFileSync(script, Buffer.from(SCRIPT.padEnd(Math.ceil(SCRIPT.length / 512) * 512 + 512, '\n')));
    const drive = (drive_id: string, path_on_host: string, io_engine: 'Sync' | 'Async') =>
      ({ drive_id, path_on_host, io_engine, is_root_device: false, cache_type: 'Writeback' as const });
    vm = new MicroVm({
      'boot-source': { kernel_image_path: fixture('vmlinux-6.1-mini'), initrd_path: fixture('guest-initrd.cpio.gz'), boot_args: testBootArgs('"sh /dev/vdf"', 'loglevel=3') },
      'machine-config': { vcpu_count: 1, mem_size_mib: 128 },
      drives: [
        drive('full_sync', full[0]!, 'Sync'), drive('full_async', full[1]!, 'Async'),
        drive('eio_sync', dm[0]!.path, 'Sync'), drive('eio_async', dm[1]!.path, 'Async'),
        drive('witness', witness, 'Sync'), { drive_id: 'script', path_on_host: script, is_root_device: false, is_read_only: true },
      ],
    }, { log: () => {}, metrics });
    const con = new ConsoleLog(vm.console);
    const go = async (step: string): Promise<void> => {
      await con.waitFor(new RegExp(`WAIT_${step}\\s`), 60_000);
      vm!.writeConsole('\n');
    };
    const diag = (): string => {
      const snap = metrics.snapshot(false) as Record<string, Record<string, unknown>>;
      return Object.entries(snap).filter(([k]) => k.startsWith('block_') || k === 'uart').map(([k, v]) => `${k} ${JSON.stringify(v)}`).join('\n');
    };
    const ioerrs = (id: string): number => (metrics.snapshot(false) as Record<string, Record<string, number>>)[`block_${id}`]!.invalid_reqs_count!;
    await vm.start();

    assert.equal(await line(con, 'SIZES', diag, 240_000), [16384, 16384, 8192, 8192, 8192], 'capacities in sectors, dm block devices included');
    assert.equal(await line(con, 'ACKED', diag), [0, 0, 0, 0, 0], 'every acknowledged write (with fsync) succeeded');
    const onHost = [...full.map((p) => readFileSync(p).subarray(0, ACK_BYTES)), ...dm.map((d) => d.read(0, ACK_BYTES)), readFileSync(witness).subarray(0, ACK_BYTES)];
    DATA.forEach((d, i) => assert.ok(onHost[i]!.equals(yes(`ACK_${d}`)), `${d}: acknowledged data is in the host file`));
    await vm.pause();
    await vm.resume();
    await go('ACKED');

    const [fullSync, fullAsync, ...rewrite] = await line(con, 'FULL', diag);
    assert.ok(fullSync !== 0 && fullAsync !== 0, `filling the tmpfs failed in the guest on both engines (dd ${fullSync}, ${fullAsync})`);
    assert.equal(rewrite, [0, 0], 'rewriting allocated blocks works on a full filesystem');
    full.forEach((p, i) => assert.ok(readFileSync(p).subarray(0, ACK_BYTES).equals(yes(`ACK2_${DATA[i]}`)), `${DATA[i]}: rewrite on the host`));
    const enospc = ioerrs('full_sync') + ioerrs('full_async');
    assert.ok(ioerrs('full_sync') > 0 && ioerrs('full_async') > 0, 'both engines answered ENOSPC with IOERR');
    small.freeBallast();
    await go('FULL');
    assert.equal(await line(con, 'FREED', diag), [0], 'writes work again once space is freed');

    dm.forEach((d) => d.fail());
    await go('EIO');
    const eio = await line(con, 'EIO', diag);
    assert.ok(eio.slice(0, 4).every((rc) => rc !== 0), `reads and flushed writes on the failed dm drives fail in the guest (dd ${eio.slice(0, 4).join(' ')})`);
    assert.is(eio[4], 0, 'the witness drive works during the faults');
    assert.ok(ioerrs('eio_sync') > 0 && ioerrs('eio_async') > 0, 'both engines answered EIO with IOERR');
    await withTimeout(vm.updateDrive('eio_sync', { rate_limiter: { ops: { size: 1000, refill_time: 100 } } }), 30_000, 'PATCH of a failing drive');
    dm.forEach((d) => d.heal());
    await go('HEAL');
    const healed = await line(con, 'HEALED', diag);
    assert.equal(healed.slice(0, 2), [0, 0], 'healed dm drives read back their acknowledged data');
    assert.ok(healed[2]! > 0, 'the guest kernel logged I/O errors');
    const exit = await withTimeout(vm.exit, 120_000, 'the guest did not reboot');
    assert.is(exit.code, 0, exit.reason);
    const served = ioerrs('full_sync') + ioerrs('full_async') + ioerrs('eio_sync') + ioerrs('eio_async');
    const eioFaults = dm.reduce((n, d) => n + d.failures, 0);
    console.log(`\n    disk faults: ${full.length + eioFaults} faults injected (ENOSPC under ${full.length} drives, EIO target on ${eioFaults} dm drives), ` +
      `${1 + dm.reduce((n, d) => n + d.heals, 0)} recoveries (space freed, tables healed); ` +
      `VMM answered ${served} requests with IOERR (${enospc} ENOSPC, ${served - enospc} EIO); guest kernel logged ${healed[2]} I/O errors; ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    if (vm && vm.state !== 'Exited' && vm.state !== 'Not started') await vm.stop();
    dm.forEach((d) => d.remove());
    small.unmount();
  }
  for (const [i, d] of dm.entries()) assert.ok(d.read(0, ACK_BYTES).equals(yes(`ACK_${DATA[2 + i]}`)), `${DATA[2 + i]}: acknowledged data survived in the loop's backing file`);
});

test.run();
