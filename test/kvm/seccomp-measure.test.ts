/**
 * How the default seccomp list (src/seccomp/default-filter.ts) was measured, kept as a check:
 * a real Kindling VMM under `strace -f` (run with --no-seccomp, the filter would hide nothing
 * but strace must see every call) boots with a drive, a TAP in a namespace and an entropy
 * device, then FlushMetrics, pause, Full snapshot, resume, guest reboot. Every syscall it
 * made must be one the default filter allows (ioctls by their decoded request's type), and
 * the list with counts is printed for whoever updates the filter. strace's own execve of
 * node is the one call the VMM never makes itself. `--seccomp-bpf` stops the tracee only on
 * the traced calls, not on every futex of the Atomics.wait-ing actors: 114 s instead of 192 s
 * in the sandbox, where each ptrace stop is two cross-CPU wake-ups (docs/design.md §9).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FirecrackerClient } from 'kindling/client';
import { fixture, testBootArgs } from '../helpers/guest.js';
import { NetNs, run, waitFor } from '../helpers/netns.js';
import { SECCOMP_RET_TRAP, AUDIT_ARCH_X86_64, run as runBpf } from '../../src/seccomp/bpf.js';
import { DEFAULT_FILTER } from '../../src/seccomp/default-filter.js';
import { compileFilter, syscallNumber } from '../../src/seccomp/filter.js';
import { KVMIO } from '../../src/seccomp/default-filter.js';

const ns = new NetNs('kindling-sc');
test.before(() => ns.create([['tap0', '169.254.30.1']]));
test.after(() => ns.remove());

test('every syscall of a strace\'d boot, pause, snapshot and resume is allowed by the default filter', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-sc-'));
  const disk = join(dir, 'disk.img');
  writeFileSync(disk, Buffer.concat([Buffer.from('KINDLING_DISK_MAGIC_42\n'), Buffer.alloc(1 << 20)]));
  const sock = join(dir, 'api.sock');
  const out = join(dir, 'strace.txt');
  const cmd = 'ip link set eth0 up; ip addr add 169.254.30.2/30 dev eth0; ping -c 2 -W 10 169.254.30.1 >/dev/null && echo PING_OK; head -c 22 /dev/vda; echo; echo READ_DONE; head -c 64 /dev/hwrng | wc -c; echo RNG_DONE; sleep 30; reboot -f';
  const vmm = run('ip', ns.exec('strace', '-f', '-qq', '--seccomp-bpf', '-o', out, '-e', 'trace=!futex', process.execPath, resolve('bin/kindling.js'), '--api-sock', sock, '--id', 'sc', '--no-seccomp'));
  const deadline = Date.now() + 60_000;
  while (!existsSync(sock)) { if (Date.now() > deadline) throw new Error(vmm.text()); await new Promise((r) => setTimeout(r, 100)); }
  await new Promise((r) => setTimeout(r, 500));
  const api = new FirecrackerClient(sock);
  await api.putBootSource({ kernel_image_path: fixture('vmlinuz'), initrd_path: fixture('guest-initrd.cpio.gz'), boot_args: testBootArgs(`"${cmd}"`) });
  await api.putMachineConfig({ vcpu_count: 2, mem_size_mib: 256 });
  await api.putDrive({ drive_id: 'd0', path_on_host: disk, is_root_device: false, is_read_only: true } as never);
  await api.putNetworkInterface({ iface_id: 'eth0', host_dev_name: 'tap0', guest_mac: '06:00:a9:fe:1e:02' });
  await api.putEntropy();
  await api.instanceStart();
  await waitFor(vmm, /RNG_DONE/, 400_000, 'guest');
  await api.request('PUT', '/actions', { action_type: 'FlushMetrics' });
  await api.pause();
  await api.createSnapshot({ snapshot_path: join(dir, 'snap'), mem_file_path: join(dir, 'mem') });
  await api.resume();
  await api.request('GET', '/machine-config');
  await api.close?.();
  await vmm.exit;
  const lines = readFileSync(out, 'utf8').split('\n');
  const counts = new Map<string, number>();
  const ioctls = new Map<string, number>();
  for (const l of lines) {
    const m = l.match(/^\d+\s+([a-z0-9_]+)\(/);
    if (!m) continue;
    counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
    if (m[1] === 'ioctl') { const r = l.match(/^\d+\s+ioctl\(\d+, ([A-Z0-9_x]+|_IOC\([^)]*\))/); const k = r?.[1] ?? l.slice(0, 80); ioctls.set(k, (ioctls.get(k) ?? 0) + 1); }
  }
  console.log(`SYSCALLS ${[...counts].sort().map(([k, v]) => `${k}:${v}`).join(' ')}`);
  console.log(`IOCTLS ${[...ioctls].sort().map(([k, v]) => `${k}:${v}`).join(' ')}`);
  assert.ok(counts.size > 30, `only ${counts.size} syscalls seen`);
  const prog = compileFilter(DEFAULT_FILTER);
  // Allowed, or answered with an errno on purpose (clone3 → ENOSYS, glibc then uses clone).
  const refused = [...counts.keys()].filter((n) => n !== 'execve' && n !== 'ioctl' && runBpf(prog, { nr: syscallNumber(n), arch: AUDIT_ARCH_X86_64 }) === SECCOMP_RET_TRAP);
  assert.equal(refused, [], 'syscalls the VMM made that the default filter refuses');
  // strace names KVM ioctls KVM_*, TUN ones TUN*, terminal ones TC*/FIO*: all types the filter allows.
  const odd = [...ioctls.keys()].filter((k) => !/^(KVM_|TUN|TC|FIO|TIOC|UFFDIO_|BLK)/.test(k));
  assert.equal(odd, [], 'ioctl requests of a type the default filter does not allow');
  assert.ok(ioctls.has('KVM_RUN') && KVMIO === 0xae);
});

test.run();
