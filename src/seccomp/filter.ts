/**
 * The seccomp allow-list and its compiler to classic BPF (docs/design.md, Seccomp).
 *
 * A filter is written as Firecracker's seccompiler reads its JSON (resources/seccomp/*.json,
 * src/seccompiler/src/types.rs): a `default_action` for every syscall not listed, a
 * `filter_action` for those listed, and `filter`: rules `{ syscall, args? }`. A rule without
 * `args` allows the syscall whatever its arguments; rules with `args` allow it when every
 * condition holds (several rules for one syscall are alternatives). Conditions compare one
 * argument (`index` 0–5) as a `dword` (low 32 bits) or `qword` with `op` `"eq"` or
 * `{ "masked_eq": mask }`; seccompiler's other operators are refused with an error. Kindling
 * adds one field: a rule's own `action` (e.g. `{ "errno": 38 }`), in place of `filter_action`.
 *
 * The program (the shape of seccompiler's backend.rs):
 *   ld arch; jeq AUDIT_ARCH_X86_64 ? next : ret KILL_PROCESS      (another ABI is never allowed)
 *   ld nr; jeq n1 ? ret allow : next; jeq n2 ? ...                  (unconditional syscalls)
 *   per conditional syscall: ld nr; jeq n ? conditions… : skip the block; ret default
 *   ret default_action
 */
import { KindlingError } from '../errors.js';
import {
  AUDIT_ARCH_X86_64, BPF_ABS, BPF_ALU, BPF_AND, BPF_JA, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_MAXINSNS, BPF_RET, BPF_W,
  SECCOMP_DATA_ARCH, SECCOMP_DATA_ARGS, SECCOMP_DATA_NR, SECCOMP_RET_ALLOW, SECCOMP_RET_DATA, SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_LOG, SECCOMP_RET_TRAP, type SockFilter, jump, stmt,
} from './bpf.js';
import { SYSCALLS_X86_64 } from './syscalls-x86_64.js';

/** A bad filter description (file or built-in). */
export class SeccompFilterError extends KindlingError {
  constructor(message: string) {
    super('SECCOMP_FILTER_INVALID', message);
  }
}

/** seccompiler's actions: a name, or `{ errno: n }`. */
export type FilterAction = 'allow' | 'trap' | 'kill_process' | 'kill_thread' | 'log' | { errno: number };

export interface ArgCondition {
  index: number;
  type: 'dword' | 'qword';
  op: 'eq' | { masked_eq: number | bigint };
  val: number | bigint;
  comment?: string;
}

export interface SyscallRule {
  syscall: string;
  args?: readonly ArgCondition[];
  /** Kindling's addition: this rule's action instead of the filter's `filter_action`. */
  action?: FilterAction;
  comment?: string;
}

export interface FilterSpec {
  default_action: FilterAction;
  filter_action: FilterAction;
  filter: readonly SyscallRule[];
}

/** The 32-bit seccomp return value of an action. */
export function actionValue(a: FilterAction): number {
  if (typeof a === 'object' && a !== null && typeof a.errno === 'number' && Number.isInteger(a.errno) && a.errno >= 0 && a.errno <= SECCOMP_RET_DATA) {
    return (SECCOMP_RET_ERRNO | a.errno) >>> 0;
  }
  switch (a) {
    case 'allow': return SECCOMP_RET_ALLOW;
    case 'trap': return SECCOMP_RET_TRAP;
    case 'kill_process': return SECCOMP_RET_KILL_PROCESS;
    case 'kill_thread': return SECCOMP_RET_KILL_THREAD;
    case 'log': return SECCOMP_RET_LOG;
  }
  throw new SeccompFilterError(`unknown seccomp action ${JSON.stringify(a)} (allow, trap, kill_process, kill_thread, log or {"errno": n})`);
}

/** The syscall number of `name` on x86_64. */
export function syscallNumber(name: string): number {
  const nr = Object.hasOwn(SYSCALLS_X86_64, name) ? SYSCALLS_X86_64[name] : undefined;
  if (nr === undefined) throw new SeccompFilterError(`unknown x86_64 syscall ${JSON.stringify(name)}`);
  return nr;
}

const ld = (off: number): SockFilter => stmt(BPF_LD | BPF_W | BPF_ABS, off);
const ret = (k: number): SockFilter => stmt(BPF_RET | BPF_K, k);

function u64(v: number | bigint, what: string): bigint {
  const b = typeof v === 'bigint' ? v : Number.isSafeInteger(v) ? BigInt(v) : -1n;
  if (b < 0n || b > 0xffff_ffff_ffff_ffffn) throw new SeccompFilterError(`${what} ${String(v)} is not an integer in 0..2^64-1`);
  return b;
}

/**
 * One alternative: every condition must hold, then `ret allow`. Each failed comparison jumps
 * past this alternative's return (the next alternative, or the block's `ret default`).
 */
function alternative(syscall: string, conds: readonly ArgCondition[], allow: number): SockFilter[] {
  type Cmp = { off: number; mask: number | null; val: number };
  const cmps: Cmp[] = [];
  for (const c of conds) {
    if (!Number.isInteger(c.index) || c.index < 0 || c.index > 5) throw new SeccompFilterError(`${syscall}: argument index ${String(c.index)} is not 0..5`);
    if (c.type !== 'dword' && c.type !== 'qword') throw new SeccompFilterError(`${syscall}: argument type ${JSON.stringify(c.type)} is not dword or qword`);
    let mask: bigint | null = null;
    if (typeof c.op === 'object' && c.op !== null && 'masked_eq' in c.op) mask = u64(c.op.masked_eq, `${syscall}: masked_eq mask`);
    else if (c.op !== 'eq') throw new SeccompFilterError(`${syscall}: operator ${JSON.stringify(c.op)} is not supported (eq, {"masked_eq": mask})`);
    const val = u64(c.val, `${syscall}: value`);
    if (c.type === 'dword' && (val > 0xffff_ffffn || (mask ?? 0n) > 0xffff_ffffn)) throw new SeccompFilterError(`${syscall}: dword value or mask above 2^32-1`);
    const off = SECCOMP_DATA_ARGS + 8 * c.index;
    const lo = (x: bigint): number => Number(x & 0xffff_ffffn);
    const hi = (x: bigint): number => Number(x >> 32n);
    cmps.push({ off, mask: mask === null ? null : lo(mask), val: lo(val) });
    if (c.type === 'qword') cmps.push({ off: off + 4, mask: mask === null ? null : hi(mask), val: hi(val) });
  }
  const body: SockFilter[][] = cmps.map((c) => [ld(c.off), ...(c.mask === null ? [] : [stmt(BPF_ALU | BPF_AND | BPF_K, c.mask)]), jump(BPF_JMP | BPF_JEQ | BPF_K, c.val, 0, 0)]);
  const out: SockFilter[] = [];
  let remaining = body.reduce((n, b) => n + b.length, 0) + 1;
  for (const b of body) {
    remaining -= b.length;
    const j = b[b.length - 1]!;
    // From the jump, skip the rest of the comparisons and the `ret allow`.
    if (remaining > 255) throw new SeccompFilterError(`${syscall}: too many argument conditions in one rule`);
    j.jf = remaining;
    out.push(...b);
  }
  out.push(ret(allow));
  return out;
}

/** Compiles `spec` into a BPF program (the instructions; bpf.ts `encode` gives the bytes). */
export function compileFilter(spec: FilterSpec): SockFilter[] {
  const allow = actionValue(spec.filter_action);
  const deny = actionValue(spec.default_action);
  if (!Array.isArray(spec.filter)) throw new SeccompFilterError('"filter" is not an array of rules');
  // Group rules by syscall, keeping the first-seen order; an argument-free rule wins.
  type Alt = { conds: ArgCondition[]; action: number };
  const groups = new Map<string, Alt[] | { any: number }>();
  for (const r of spec.filter) {
    if (typeof r?.syscall !== 'string') throw new SeccompFilterError(`a rule has no "syscall" name: ${JSON.stringify(r)}`);
    syscallNumber(r.syscall);
    const action = r.action === undefined ? allow : actionValue(r.action);
    const prev = groups.get(r.syscall);
    if (r.args === undefined || r.args.length === 0) groups.set(r.syscall, { any: action });
    else if (prev === undefined || Array.isArray(prev)) groups.set(r.syscall, [...(prev ?? []), { conds: [...r.args], action }]);
  }
  const prog: SockFilter[] = [
    ld(SECCOMP_DATA_ARCH),
    jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
    ret(SECCOMP_RET_KILL_PROCESS),
    ld(SECCOMP_DATA_NR),
  ];
  for (const [name, g] of groups) if (!Array.isArray(g)) prog.push(jump(BPF_JMP | BPF_JEQ | BPF_K, syscallNumber(name), 0, 1), ret(g.any));
  for (const [name, g] of groups) {
    if (!Array.isArray(g)) continue;
    const body = [...g.flatMap((a) => alternative(name, a.conds, a.action)), ret(deny)];
    // Not this syscall: jump over the whole block with BPF_JA (32-bit offset).
    prog.push(ld(SECCOMP_DATA_NR), jump(BPF_JMP | BPF_JEQ | BPF_K, syscallNumber(name), 1, 0), stmt(BPF_JMP | BPF_JA, body.length), ...body);
  }
  prog.push(ret(deny));
  if (prog.length > BPF_MAXINSNS) throw new SeccompFilterError(`the filter compiles to ${prog.length} BPF instructions, more than BPF_MAXINSNS (${BPF_MAXINSNS})`);
  return prog;
}

/**
 * Reads a filter file: `{ "vmm": FilterSpec }` (seccompiler's JSON with one category; see
 * docs/design.md, Seccomp). Kindling installs one filter for the whole process, so the
 * `api`/`vcpu` categories of a Firecracker file have no thread of their own here and are refused.
 */
export function parseFilterFile(text: string): FilterSpec {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SeccompFilterError(`the filter file is not JSON: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new SeccompFilterError('the filter file is not a JSON object of categories');
  const keys = Object.keys(json);
  const other = keys.filter((k) => k !== 'vmm');
  if (other.length > 0) {
    throw new SeccompFilterError(`category ${JSON.stringify(other[0])} is not supported: Kindling runs every thread under one process-wide filter, the "vmm" category`);
  }
  const spec = (json as { vmm?: FilterSpec }).vmm;
  if (typeof spec !== 'object' || spec === null) throw new SeccompFilterError('the filter file has no "vmm" category');
  compileFilter(spec); // every error now, before the VMM starts
  return spec;
}
