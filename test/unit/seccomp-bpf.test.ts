/**
 * The seccomp BPF generator (src/seccomp/filter.ts, bpf.ts): programs are compiled, encoded to
 * the kernel's bytes, decoded back and run on struct seccomp_data values by the interpreter;
 * the architecture check, the allow-list, argument conditions, per-rule actions and the
 * default action are each checked, and each malformed filter is refused with its reason.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import koffi from 'koffi';
import {
  AUDIT_ARCH_X86_64, BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W, SECCOMP_DATA_ARCH, SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_TRAP, SOCK_FILTER_SIZE, decode, encode, run,
} from '../../src/seccomp/bpf.js';
import { DEFAULT_FILTER, ENOSYS, IOC_TYPE_MASK, KVMIO, PTHREAD_CLONE_FLAGS } from '../../src/seccomp/default-filter.js';
import { type FilterSpec, SeccompFilterError, compileFilter, parseFilterFile, syscallNumber } from '../../src/seccomp/filter.js';
import { sock_fprog } from '../../src/seccomp/install.js';
import { rlimit } from '../../src/jailer/sys.js';

const nr = syscallNumber;
/** Compile, encode, decode: what runs is what the kernel would read. */
const roundTrip = (spec: FilterSpec) => decode(encode(compileFilter(spec)));
const x86 = (name: string, args: bigint[] = []) => ({ nr: nr(name), arch: AUDIT_ARCH_X86_64, args });

test('sizes: sock_filter 8 bytes, sock_fprog 16 (len at 0, filter at 8), rlimit 16', () => {
  assert.is(encode([{ code: 1, jt: 2, jf: 3, k: 4 }]).length, SOCK_FILTER_SIZE);
  assert.is(koffi.sizeof(sock_fprog), 16);
  assert.is(koffi.offsetof(sock_fprog, 'len'), 0);
  assert.is(koffi.offsetof(sock_fprog, 'filter'), 8);
  assert.is(koffi.sizeof(rlimit), 16);
});

test('encode/decode round-trips every field, little-endian', () => {
  const prog = [{ code: 0x15, jt: 7, jf: 250, k: 0xdeadbeef }, { code: 0x06, jt: 0, jf: 0, k: SECCOMP_RET_ALLOW }];
  const bytes = encode(prog);
  assert.equal([...bytes.subarray(0, 8)], [0x15, 0, 7, 250, 0xef, 0xbe, 0xad, 0xde]);
  assert.equal(decode(bytes), prog);
});

test('the program starts with the architecture check, and another ABI is killed', () => {
  const prog = roundTrip({ default_action: 'trap', filter_action: 'allow', filter: [{ syscall: 'read' }] });
  assert.equal(prog[0], { code: BPF_LD | BPF_W | BPF_ABS, jt: 0, jf: 0, k: SECCOMP_DATA_ARCH });
  assert.equal(prog[1], { code: BPF_JMP | BPF_JEQ | BPF_K, jt: 1, jf: 0, k: AUDIT_ARCH_X86_64 });
  assert.equal(prog[2], { code: BPF_RET | BPF_K, jt: 0, jf: 0, k: SECCOMP_RET_KILL_PROCESS });
  // i386's read (3) under AUDIT_ARCH_I386 must not pass as x86_64's.
  assert.is(run(prog, { nr: nr('read'), arch: 0x40000003 }), SECCOMP_RET_KILL_PROCESS);
});

test('allow-list: listed syscalls get filter_action, the rest default_action', () => {
  const prog = roundTrip({ default_action: 'trap', filter_action: 'allow', filter: [{ syscall: 'read' }, { syscall: 'write' }, { syscall: 'futex' }] });
  for (const s of ['read', 'write', 'futex']) assert.is(run(prog, x86(s)), SECCOMP_RET_ALLOW, s);
  for (const s of ['execve', 'open', 'ptrace', 'mount']) assert.is(run(prog, x86(s)), SECCOMP_RET_TRAP, s);
  const errno = roundTrip({ default_action: { errno: 1 }, filter_action: 'log', filter: [{ syscall: 'read' }] });
  assert.is(run(errno, x86('execve')), (SECCOMP_RET_ERRNO | 1) >>> 0);
  assert.is(run(errno, x86('read')), 0x7ffc0000);
});

test('argument conditions: dword eq, masked_eq, qword on both halves; alternatives are ORed', () => {
  const prog = roundTrip({
    default_action: 'trap', filter_action: 'allow', filter: [
      { syscall: 'ioctl', args: [{ index: 1, type: 'dword', op: { masked_eq: 0xff00 }, val: 0xae00 }] },
      { syscall: 'ioctl', args: [{ index: 1, type: 'dword', op: 'eq', val: 0x5421 }] },
      { syscall: 'mmap', args: [{ index: 2, type: 'qword', op: 'eq', val: 0x1_0000_0003n }, { index: 0, type: 'dword', op: 'eq', val: 0 }] },
    ],
  });
  assert.is(run(prog, x86('ioctl', [3n, 0xc008ae05n])), SECCOMP_RET_ALLOW, 'a KVM ioctl (type 0xAE)');
  assert.is(run(prog, x86('ioctl', [3n, 0x5421n])), SECCOMP_RET_ALLOW, 'FIONBIO by equality');
  assert.is(run(prog, x86('ioctl', [3n, 0x5422n])), SECCOMP_RET_TRAP, 'another type 0x54 request');
  assert.is(run(prog, x86('ioctl', [3n, 0x8912n])), SECCOMP_RET_TRAP, 'SIOCGIFCONF');
  assert.is(run(prog, x86('mmap', [0n, 0n, 0x1_0000_0003n])), SECCOMP_RET_ALLOW);
  assert.is(run(prog, x86('mmap', [0n, 0n, 0x3n])), SECCOMP_RET_TRAP, 'high half differs');
  assert.is(run(prog, x86('mmap', [8n, 0n, 0x1_0000_0003n])), SECCOMP_RET_TRAP, 'second condition fails');
  assert.is(run(prog, x86('read')), SECCOMP_RET_TRAP, 'a syscall after the conditional blocks still meets the default');
});

test('an argument-free rule wins over conditional ones; a rule\'s own action', () => {
  const prog = roundTrip({ default_action: 'trap', filter_action: 'allow', filter: [
    { syscall: 'ioctl', args: [{ index: 1, type: 'dword', op: 'eq', val: 1 }] }, { syscall: 'ioctl' },
    { syscall: 'clone3', action: { errno: 38 } },
  ] });
  assert.is(run(prog, x86('ioctl', [0n, 99n])), SECCOMP_RET_ALLOW);
  assert.is(run(prog, x86('clone3')), (SECCOMP_RET_ERRNO | 38) >>> 0);
});

test('the default filter: measured calls allowed, dangerous ones trap, ioctl by type, threads but no processes', () => {
  const prog = roundTrip(DEFAULT_FILTER);
  for (const s of ['read', 'write', 'futex', 'mmap', 'epoll_pwait', 'openat', 'memfd_create', 'tgkill', 'io_uring_enter']) assert.is(run(prog, x86(s)), SECCOMP_RET_ALLOW, s);
  for (const s of ['execve', 'execveat', 'fork', 'vfork', 'ptrace', 'mount', 'pivot_root', 'chroot', 'setns', 'unshare', 'init_module', 'bpf', 'setuid', 'reboot', 'kexec_load', 'perf_event_open']) {
    assert.is(run(prog, x86(s)), SECCOMP_RET_TRAP, s);
  }
  assert.is(run(prog, x86('ioctl', [9n, BigInt((KVMIO << 8) | 0x80)])), SECCOMP_RET_ALLOW, 'KVM_RUN');
  assert.is(run(prog, x86('ioctl', [9n, 0x400454can])), SECCOMP_RET_ALLOW, 'TUNSETIFF');
  assert.is(run(prog, x86('ioctl', [9n, 0x8933n])), SECCOMP_RET_TRAP, 'SIOCGIFINDEX (type 0x89) is not Kindling\'s');
  assert.ok(IOC_TYPE_MASK === 0xff00);
  assert.is(run(prog, x86('clone', [BigInt(PTHREAD_CLONE_FLAGS)])), SECCOMP_RET_ALLOW, 'pthread_create');
  assert.is(run(prog, x86('clone', [17n /* SIGCHLD: fork */])), SECCOMP_RET_TRAP, 'fork through clone');
  assert.is(run(prog, x86('clone3')), (SECCOMP_RET_ERRNO | ENOSYS) >>> 0, 'clone3 → ENOSYS so glibc falls back to clone');
});

test('bad filters are refused with their reason', () => {
  const base = { default_action: 'trap', filter_action: 'allow' } as const;
  const bad: [unknown, RegExp][] = [
    [{ ...base, filter: [{ syscall: 'nope' }] }, /unknown x86_64 syscall "nope"/],
    [{ ...base, default_action: 'explode', filter: [] }, /unknown seccomp action "explode"/],
    [{ ...base, filter: [{ syscall: 'ioctl', args: [{ index: 6, type: 'dword', op: 'eq', val: 1 }] }] }, /argument index 6/],
    [{ ...base, filter: [{ syscall: 'ioctl', args: [{ index: 1, type: 'word', op: 'eq', val: 1 }] }] }, /argument type "word"/],
    [{ ...base, filter: [{ syscall: 'ioctl', args: [{ index: 1, type: 'dword', op: 'gt', val: 1 }] }] }, /operator "gt" is not supported/],
    [{ ...base, filter: [{ syscall: 'ioctl', args: [{ index: 1, type: 'dword', op: 'eq', val: 2 ** 33 }] }] }, /dword value or mask above/],
    [{ ...base, filter: 'read' }, /"filter" is not an array/],
  ];
  for (const [spec, re] of bad) {
    try {
      compileFilter(spec as FilterSpec);
      assert.unreachable(JSON.stringify(spec));
    } catch (e) {
      assert.instance(e, SeccompFilterError);
      assert.match((e as Error).message, re);
      assert.is((e as SeccompFilterError).code, 'SECCOMP_FILTER_INVALID');
    }
  }
});

test('filter files: one "vmm" category; other categories and non-JSON refused', () => {
  const spec = parseFilterFile(JSON.stringify({ vmm: { default_action: 'trap', filter_action: 'allow', filter: [{ syscall: 'read' }] } }));
  assert.is(run(roundTrip(spec), x86('read')), SECCOMP_RET_ALLOW);
  assert.throws(() => parseFilterFile('{"api": {}}'), /category "api" is not supported/);
  assert.throws(() => parseFilterFile('[1]'), /not a JSON object/);
  assert.throws(() => parseFilterFile('{}'), /no "vmm" category/);
  assert.throws(() => parseFilterFile('\u0000'), /not JSON/);
});

test.run();
