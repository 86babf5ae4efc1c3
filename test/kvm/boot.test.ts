/**
 * Booting Linux microVMs to userspace under real KVM, through the MicroVm library.
 * Boots are slow in the nested sandbox (20–60 s), so each boot checks several things:
 *  - Debian's stock kernel (bzImage) + busybox initramfs, 2 vCPUs, 256 MiB, --boot-timer:
 *    init marker, boot-timer line, 2 online CPUs, MemTotal 70–100 % of 256 MiB, guest RAM
 *    in 2 MiB pages where the host lets shmem use THP (the sandbox does), `reboot -f`
 *    → exit code 0;
 *  - the minimal ELF vmlinux (devices on the command line): init marker, then
 *    SendCtrlAltDel → busybox init's ctrlaltdel action (reboot) → exit code 0;
 *  - a kernel that triple-faults at its first instruction → exit code 1 and an error line.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MicroVm } from 'kindling';
import { fixture, testBootArgs, ConsoleLog, withTimeout } from '../helpers/guest.js';
import { elf64 } from '../helpers/hostile-cpu.js';

const BOOT_TIMEOUT_MS = 240_000;

/** kB of this process's memfd guest RAM mapped with 2 MiB page table entries (smaps ShmemPmdMapped). */
function guestRamPmdKib(): number {
  const blocks = readFileSync('/proc/self/smaps', 'utf8').split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
  return blocks.filter((b) => b.includes('memfd:kindling-guest-ram'))
    .reduce((n, b) => n + Number(/ShmemPmdMapped:\s+(\d+)/.exec(b)?.[1] ?? 0), 0);
}

/** True when the host lets shmem use transparent huge pages on MADV_HUGEPAGE. */
const shmemThp = (): boolean => /\[(always|advise|within_size|force)\]/.test(readFileSync('/sys/kernel/mm/transparent_hugepage/shmem_enabled', 'utf8'));

test('Debian kernel + initramfs: 2 vCPUs, 256 MiB, boot timer, reboot -f exits 0', async () => {
  const logs: string[] = [];
  const vm = new MicroVm({
    'boot-source': {
      kernel_image_path: fixture('vmlinuz'),
      initrd_path: fixture('guest-initrd.cpio.gz'),
      boot_args: testBootArgs('"devmem 0xc0000000 8 123; echo CPUS=$(nproc); grep MemTotal /proc/meminfo"'),
    },
    'machine-config': { vcpu_count: 2, mem_size_mib: 256 },
    bootTimer: true,
  }, { log: (level, msg) => logs.push(`${level}: ${msg}`) });
  const con = new ConsoleLog(vm.console);
  const t0 = performance.now();
  await vm.start();
  await con.waitFor(/KINDLING_GUEST_READY/, BOOT_TIMEOUT_MS);
  const cpus = await con.waitFor(/CPUS=(\d+)\s/, 60_000);
  const memTotal = await con.waitFor(/MemTotal:\s+(\d+) kB/, 60_000);
  const pmdKib = guestRamPmdKib();
  const exit = await vm.exit;
  console.log(`    guest RAM in 2 MiB pages: ${pmdKib} kB (shmem THP ${shmemThp() ? 'allowed' : 'disabled on this host'})`);
  if (shmemThp()) assert.ok(pmdKib >= 2048, 'the booted guest touched RAM that is mapped in 2 MiB pages');
  console.log(`\n    Debian guest: booted and rebooted in ${((performance.now() - t0) / 1000).toFixed(1)} s; MemTotal ${memTotal[1]} kB`);
  assert.is(Number(cpus[1]), 2, 'online CPUs');
  const kb = Number(memTotal[1]);
  assert.ok(kb >= 0.7 * 256 * 1024 && kb <= 256 * 1024, `MemTotal ${kb} kB`);
  assert.match(con.text, /KINDLING_EXIT=0/);
  assert.ok(logs.some((l) => /^info: Guest-boot-time = +\d+ us \d+ ms, +\d+ CPU us \d+ CPU ms$/.test(l)), `boot timer line in ${logs.join(' | ')}`);
  assert.is(exit.code, 0, exit.reason);
});

test('minimal ELF vmlinux boots to a shell that runs typed commands; SendCtrlAltDel makes busybox init reboot → exit 0', async () => {
  const vm = new MicroVm({
    'boot-source': {
      kernel_image_path: fixture('vmlinux-6.1-mini'),
      initrd_path: fixture('guest-initrd.cpio.gz'),
      boot_args: testBootArgs(),
    },
    'machine-config': { vcpu_count: 1, mem_size_mib: 128 },
  }, { log: () => {} });
  const con = new ConsoleLog(vm.console);
  await vm.start();
  await con.waitFor(/KINDLING_GUEST_READY/, BOOT_TIMEOUT_MS);
  // A command typed on the serial console runs in the guest's shell (serial RX path). By then
  // busybox init has read /etc/inittab and handles Ctrl-Alt-Del (the kernel sends it SIGINT).
  vm.writeConsole('echo typed_$((6*7))\n');
  await con.waitFor(/typed_42/, 60_000);
  // A second line after the first was consumed (regression: the input pump once stalled here).
  vm.writeConsole('echo again_$((7*6))\r');
  await con.waitFor(/again_42/, 60_000);
  await vm.sendCtrlAltDel(); // rejects when the i8042 buffer has no room for the sequence
  const exit = await withTimeout(vm.exit, 120_000, 'no reboot after Ctrl-Alt-Del');
  assert.is(exit.code, 0, exit.reason);
});

/** An ELF64 whose only segment, at 1 MiB, is `ud2`: with Firecracker's 1-entry IDT the #UD
 * escalates to a triple fault (KVM_EXIT_SHUTDOWN) at the first instruction. */
const tripleFaultElf = (): Uint8Array => elf64(0x100000, [{ type: 'load', paddr: 0x100000, data: Uint8Array.of(0x0f, 0x0b) }]); // ud2

test('a guest that triple-faults stops with exit code 1 and Firecracker\'s error line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-tf-'));
  const kernel = join(dir, 'triple-fault.elf');
  writeFileSync(kernel, tripleFaultElf());
  const logs: string[] = [];
  const vm = new MicroVm({ 'boot-source': { kernel_image_path: kernel, boot_args: '' } }, { log: (l, m) => logs.push(`${l}: ${m}`) });
  await vm.start();
  const exit = await withTimeout(vm.exit, 60_000, 'triple fault hung the VM');
  assert.is(exit.code, 1);
  assert.match(exit.reason, /triple fault/);
  // Firecracker has no case for KVM_EXIT_SHUTDOWN: an "unexpected exit reason" (vstate/vcpu.rs).
  assert.ok(logs.includes('error: Unexpected exit reason on vcpu run: Shutdown'), logs.join(' | '));
});

test.run();
