/**
 * Classic BPF as seccomp runs it (linux/include/uapi/linux/filter.h, linux/bpf_common.h,
 * linux/seccomp.h; Documentation/userspace-api/seccomp_filter.rst): the instruction encoding,
 * the few opcodes a syscall allow-list needs, and an interpreter over `struct seccomp_data`
 * so a compiled program can be decoded and checked without installing it (the unit tests do).
 *
 * Firecracker compiles its filters with seccompiler (src/seccompiler/src/backend.rs), whose
 * programs have the same shape: check the architecture, then one block per syscall.
 */

/** struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; }: 8 bytes. */
export const SOCK_FILTER_SIZE = 8;
/** Most instructions one program may hold (linux/include/uapi/linux/bpf_common.h BPF_MAXINSNS). */
export const BPF_MAXINSNS = 4096;

// Instruction classes, sizes, modes and operations (linux/bpf_common.h).
export const BPF_LD = 0x00;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_RET = 0x06;
export const BPF_W = 0x00;
export const BPF_ABS = 0x20;
export const BPF_AND = 0x50;
export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_K = 0x00;

// seccomp return values (linux/seccomp.h); the high 16 bits are the action.
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_KILL_THREAD = 0x00000000;
export const SECCOMP_RET_TRAP = 0x00030000;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_LOG = 0x7ffc0000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_DATA = 0x0000ffff;

/** AUDIT_ARCH_X86_64 = EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE (linux/audit.h). */
export const AUDIT_ARCH_X86_64 = 0xc000003e;

/**
 * struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }:
 * the offsets a BPF_ABS load reads.
 */
export const SECCOMP_DATA_NR = 0;
export const SECCOMP_DATA_ARCH = 4;
export const SECCOMP_DATA_ARGS = 16;
export const SECCOMP_DATA_SIZE = 64;

/** One decoded instruction. */
export interface SockFilter {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export const stmt = (code: number, k: number): SockFilter => ({ code, jt: 0, jf: 0, k: k >>> 0 });
export const jump = (code: number, k: number, jt: number, jf: number): SockFilter => ({ code, jt, jf, k: k >>> 0 });

/** The program as the kernel reads it: little-endian sock_filter records. */
export function encode(program: readonly SockFilter[]): Buffer {
  const out = Buffer.alloc(program.length * SOCK_FILTER_SIZE);
  program.forEach((ins, i) => {
    const o = i * SOCK_FILTER_SIZE;
    out.writeUInt16LE(ins.code, o);
    out.writeUInt8(ins.jt, o + 2);
    out.writeUInt8(ins.jf, o + 3);
    out.writeUInt32LE(ins.k >>> 0, o + 4);
  });
  return out;
}

/** `encode` backwards. */
export function decode(buf: Uint8Array): SockFilter[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: SockFilter[] = [];
  for (let o = 0; o + SOCK_FILTER_SIZE <= b.length; o += SOCK_FILTER_SIZE) {
    out.push({ code: b.readUInt16LE(o), jt: b.readUInt8(o + 2), jf: b.readUInt8(o + 3), k: b.readUInt32LE(o + 4) });
  }
  return out;
}

/** A syscall as seccomp sees it: number, audit architecture, arguments (64-bit each). */
export interface SeccompData {
  nr: number;
  arch: number;
  args?: readonly bigint[];
}

/** The 32-bit word at `off` in struct seccomp_data (little-endian, as on x86_64). */
function word(d: SeccompData, off: number): number {
  if (off === SECCOMP_DATA_NR) return d.nr >>> 0;
  if (off === SECCOMP_DATA_ARCH) return d.arch >>> 0;
  if (off >= SECCOMP_DATA_ARGS && off < SECCOMP_DATA_SIZE && off % 4 === 0) {
    const i = (off - SECCOMP_DATA_ARGS) >> 3;
    const v = d.args?.[i] ?? 0n;
    return Number(off % 8 === 0 ? v & 0xffffffffn : (v >> 32n) & 0xffffffffn);
  }
  throw new RangeError(`BPF load from offset ${off} outside struct seccomp_data`);
}

/**
 * Runs `program` on `d` as the kernel's seccomp BPF would (only the opcodes this module emits;
 * any other is an error) and returns the 32-bit action.
 */
export function run(program: readonly SockFilter[], d: SeccompData): number {
  let a = 0;
  for (let pc = 0; pc < program.length; pc++) {
    const ins = program[pc]!;
    switch (ins.code) {
      case BPF_LD | BPF_W | BPF_ABS:
        a = word(d, ins.k);
        break;
      case BPF_ALU | BPF_AND | BPF_K:
        a = (a & ins.k) >>> 0;
        break;
      case BPF_JMP | BPF_JA:
        pc += ins.k;
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
        pc += a === ins.k ? ins.jt : ins.jf;
        break;
      case BPF_RET | BPF_K:
        return ins.k >>> 0;
      default:
        throw new RangeError(`BPF opcode 0x${ins.code.toString(16)} at ${pc} is not one Kindling emits`);
    }
  }
  throw new RangeError('BPF program ran off its end without a return');
}
