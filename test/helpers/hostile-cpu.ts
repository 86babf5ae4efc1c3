/**
 * A kernel-less hostile guest for the KVM tier: a PVH ELF whose only code is a tiny command
 * interpreter, hand-assembled below (no assembler is needed at test time). The host writes
 * commands into the guest's mailbox and the guest executes each one with a real instruction, so
 * every MMIO and port access is a genuine KVM exit (or an ioeventfd hit) of a running vCPU.
 *
 * Boot: Kindling loads the ELF at 1 MiB and enters it through the Xen PHYS32_ENTRY note (PVH:
 * 32-bit protected mode, flat 4 GiB segments, no paging, interrupts off), so the whole 32-bit
 * physical space — RAM, the MMIO gap at 0xC000_0000, the virtio-mmio windows — is addressable
 * with plain `mov`s. Guest RAM itself is written by the host directly (GuestMemory), the way a
 * malicious driver would lay out rings; the guest only does what needs a CPU.
 *
 * Mailbox protocol (all little-endian u32, in guest RAM):
 *   SEQ   host → guest: bumped after a batch of commands is written
 *   DONE  guest → host: set to SEQ when the batch ran to its END command
 *   CMDS  16-byte commands {op, addr, value, result}; the guest stores read results in `result`
 * The guest spins on SEQ with `pause` (AMD pause filtering turns long spins into in-kernel
 * exits, never userspace ones), so an idle hostile guest costs no VMM work.
 */
import { writeFileSync } from 'node:fs';
import type { BusDevice } from '../../src/devices/bus.js';
import { must, type GuestMemory } from '../../src/memory/guest-memory.js';

/** Interpreter opcodes: the `op` field of a command. */
export const OP = {
  END: 0, W32: 1, R32: 2, W16: 3, R16: 4, W8: 5, R8: 6,
  OUTB: 7, INB: 8, OUTW: 9, INW: 10, OUTL: 11, INL: 12,
  /** 8-byte MMIO accesses through MMX (`movq`): `value` and `result` hold the 64 bits. */
  W64: 13, R64: 14,
  /** `rep outsb` / `rep insb`: port `addr`, buffer GPA `value`, count in `result`. */
  REP_OUTSB: 15, REP_INSB: 16,
} as const;

export interface Command {
  op: number;
  addr: number;
  value?: number;
  /** Input for W64 (high half) and the REP counts; output of reads. */
  extra?: number;
}

/** Where the payload lives (inside its single PT_LOAD segment). */
export const PAYLOAD = {
  LOAD: 0x100000,
  SEQ: 0x100f00,
  DONE: 0x100f04,
  CMDS: 0x101000,
  /** Commands that fit between CMDS and the stack. */
  MAX_COMMANDS: (0x10f000 - 0x101000) / 16,
  STACK_TOP: 0x110000,
} as const;
const COMMAND_SIZE = 16;

/** A minimal x86-32 emitter: bytes plus rel32 jumps resolved against labels. */
class Asm {
  readonly bytes: number[] = [];
  private readonly labels = new Map<string, number>();
  private readonly fixups: { at: number; label: string }[] = [];
  emit(...b: number[]): this {
    this.bytes.push(...b);
    return this;
  }
  imm32(v: number): this {
    for (let i = 0; i < 4; i++) this.bytes.push((v >>> (8 * i)) & 0xff);
    return this;
  }
  label(name: string): this {
    this.labels.set(name, this.bytes.length);
    return this;
  }
  /** `je label` (0F 84 rel32) or `jmp label` (E9 rel32). */
  jump(kind: 'je' | 'jmp', label: string): this {
    this.emit(...(kind === 'je' ? [0x0f, 0x84] : [0xe9]));
    this.fixups.push({ at: this.bytes.length, label });
    return this.imm32(0);
  }
  link(): Uint8Array {
    for (const f of this.fixups) {
      const target = this.labels.get(f.label);
      if (target === undefined) throw new Error(`undefined label ${f.label}`);
      const rel = target - (f.at + 4);
      for (let i = 0; i < 4; i++) this.bytes[f.at + i] = (rel >>> (8 * i)) & 0xff;
    }
    return Uint8Array.from(this.bytes);
  }
}

/** The interpreter's machine code (encodings checked against GNU as, `.code32`). */
export function interpreterCode(): Uint8Array {
  const a = new Asm();
  a.emit(0xbc).imm32(PAYLOAD.STACK_TOP); //        mov esp, STACK_TOP
  a.label('batch').emit(0xbe).imm32(PAYLOAD.CMDS); // mov esi, CMDS
  a.label('loop');
  a.emit(0x8b, 0x06); //                           mov eax, [esi]       op
  a.emit(0x8b, 0x56, 0x04); //                     mov edx, [esi+4]     addr / port
  a.emit(0x8b, 0x4e, 0x08); //                     mov ecx, [esi+8]     value
  const handlers = Object.entries(OP).filter(([, v]) => v !== OP.END);
  for (const [name, v] of handlers) a.emit(0x83, 0xf8, v).jump('je', name); // cmp eax, v; je
  // END (or an unknown op): publish DONE = SEQ, then spin until the host bumps SEQ.
  a.emit(0xa1).imm32(PAYLOAD.SEQ); //              mov eax, [SEQ]
  a.emit(0xa3).imm32(PAYLOAD.DONE); //             mov [DONE], eax
  a.label('spin').emit(0xf3, 0x90); //             pause
  a.emit(0x3b, 0x05).imm32(PAYLOAD.SEQ); //        cmp eax, [SEQ]
  a.jump('je', 'spin').jump('jmp', 'batch');
  const store = (): Asm => a.emit(0x89, 0x46, 0x0c).jump('jmp', 'next'); // mov [esi+12], eax
  a.label('W32').emit(0x89, 0x0a).jump('jmp', 'next'); //       mov [edx], ecx
  a.label('R32').emit(0x8b, 0x02); store(); //                  mov eax, [edx]
  a.label('W16').emit(0x66, 0x89, 0x0a).jump('jmp', 'next'); // mov [edx], cx
  a.label('R16').emit(0x0f, 0xb7, 0x02); store(); //            movzx eax, word [edx]
  a.label('W8').emit(0x88, 0x0a).jump('jmp', 'next'); //        mov [edx], cl
  a.label('R8').emit(0x0f, 0xb6, 0x02); store(); //             movzx eax, byte [edx]
  a.label('OUTB').emit(0x89, 0xc8, 0xee).jump('jmp', 'next'); // mov eax, ecx; out dx, al
  a.label('INB').emit(0x31, 0xc0, 0xec); store(); //            xor eax, eax; in al, dx
  a.label('OUTW').emit(0x89, 0xc8, 0x66, 0xef).jump('jmp', 'next'); // mov eax, ecx; out dx, ax
  a.label('INW').emit(0x31, 0xc0, 0x66, 0xed); store(); //      xor eax, eax; in ax, dx
  a.label('OUTL').emit(0x89, 0xc8, 0xef).jump('jmp', 'next'); // mov eax, ecx; out dx, eax
  a.label('INL').emit(0xed); store(); //                        in eax, dx
  a.label('W64').emit(0x0f, 0x6f, 0x46, 0x08, 0x0f, 0x7f, 0x02).jump('jmp', 'next'); // movq mm0, [esi+8]; movq [edx], mm0
  a.label('R64').emit(0x0f, 0x6f, 0x02, 0x0f, 0x7f, 0x46, 0x08).jump('jmp', 'next'); // movq mm0, [edx]; movq [esi+8], mm0
  // push esi; mov ecx, [esi+12]; mov esi, [esi+8]; rep outsb; pop esi
  a.label('REP_OUTSB').emit(0x56, 0x8b, 0x4e, 0x0c, 0x8b, 0x76, 0x08, 0xf3, 0x6e, 0x5e).jump('jmp', 'next');
  // mov edi, [esi+8]; mov ecx, [esi+12]; rep insb
  a.label('REP_INSB').emit(0x8b, 0x7e, 0x08, 0x8b, 0x4e, 0x0c, 0xf3, 0x6c).jump('jmp', 'next');
  a.label('next').emit(0x83, 0xc6, COMMAND_SIZE).jump('jmp', 'loop'); // add esi, 16
  return a.link();
}

/** One segment of an image built by `elf64`. */
export interface ImageSegment {
  /** PT_LOAD (copied to `paddr`, zero-filled up to `memsz`) or PT_NOTE (scanned by the loader). */
  readonly type: 'load' | 'note';
  readonly paddr: number;
  readonly data: Uint8Array;
  readonly memsz?: number;
}

/**
 * A minimal ELF64 x86_64 executable (System V gABI): the header, one program header per
 * segment, then the segments' bytes. Enough for Kindling's loader (src/boot/elf.ts); kernel-less
 * test guests are built with it.
 */
export function elf64(entry: number, segments: readonly ImageSegment[]): Uint8Array {
  const EH = 64;
  const PH = 56;
  let at = EH + PH * segments.length;
  const placed = segments.map((seg) => ({ seg, off: (at += seg.data.length) - seg.data.length }));
  const buf = Buffer.alloc(at);
  buf.write('\x7fELF', 0, 'latin1');
  buf[4] = 2; // ELFCLASS64
  buf[5] = 1; // ELFDATA2LSB
  buf[6] = 1; // EV_CURRENT
  buf.writeUInt16LE(2, 16); // ET_EXEC
  buf.writeUInt16LE(62, 18); // EM_X86_64
  buf.writeUInt32LE(1, 20);
  buf.writeBigUInt64LE(BigInt(entry), 24); // e_entry
  buf.writeBigUInt64LE(BigInt(EH), 32); // e_phoff
  buf.writeUInt16LE(EH, 52);
  buf.writeUInt16LE(PH, 54);
  buf.writeUInt16LE(segments.length, 56); // e_phnum
  placed.forEach(({ seg, off }, i) => {
    const ph = EH + PH * i;
    buf.writeUInt32LE(seg.type === 'load' ? 1 : 4, ph); // PT_LOAD / PT_NOTE
    buf.writeUInt32LE(7, ph + 4); // PF_R | PF_W | PF_X
    buf.writeBigUInt64LE(BigInt(off), ph + 8);
    buf.writeBigUInt64LE(BigInt(seg.paddr), ph + 16);
    buf.writeBigUInt64LE(BigInt(seg.paddr), ph + 24);
    buf.writeBigUInt64LE(BigInt(seg.data.length), ph + 32);
    buf.writeBigUInt64LE(BigInt(seg.type === 'load' ? seg.memsz ?? seg.data.length : 0), ph + 40);
    Buffer.from(seg.data).copy(buf, off);
  });
  return buf;
}

/**
 * The payload as an ELF64 image: one PT_LOAD (code, then zeroed mailbox, commands and stack up
 * to STACK_TOP) and one PT_NOTE holding the Xen PHYS32_ENTRY note that selects PVH entry.
 */
export function hostileElf(): Uint8Array {
  const code = interpreterCode();
  if (code.length > PAYLOAD.SEQ - PAYLOAD.LOAD) throw new Error('interpreter overlaps its mailbox');
  const note = Buffer.alloc(12 + 4 + 4);
  note.writeUInt32LE(4, 0); // namesz ("Xen\0")
  note.writeUInt32LE(4, 4); // descsz (u32 entry)
  note.writeUInt32LE(18, 8); // XEN_ELFNOTE_PHYS32_ENTRY
  note.write('Xen\0', 12, 'latin1');
  note.writeUInt32LE(PAYLOAD.LOAD, 16);
  return elf64(PAYLOAD.LOAD, [
    { type: 'load', paddr: PAYLOAD.LOAD, data: code, memsz: PAYLOAD.STACK_TOP - PAYLOAD.LOAD },
    { type: 'note', paddr: 0, data: note },
  ]);
}

/** Writes the payload to `path` (a kernel_image_path for MicroVm). */
export function writeHostileElf(path: string): string {
  writeFileSync(path, hostileElf());
  return path;
}

/** The host side of the mailbox: runs command batches on the hostile guest's vCPU. */
export class HostileCpu {
  private seq = 0;
  /** Commands executed so far (every one a guest instruction, most a VM exit). */
  executed = 0;

  constructor(private readonly mem: GuestMemory, private readonly alive: () => boolean = () => true) {}

  /**
   * Runs `cmds` in order and resolves with them, `extra` filled in for reads (R64: `value` and
   * `extra` are the low and high halves). Rejects when the guest does not finish in `ms`.
   */
  async run(cmds: readonly Command[], ms = 60_000): Promise<Command[]> {
    const out: Command[] = [];
    for (let i = 0; i < cmds.length; i += PAYLOAD.MAX_COMMANDS - 1) out.push(...(await this.batch(cmds.slice(i, i + PAYLOAD.MAX_COMMANDS - 1), ms)));
    return out;
  }

  private async batch(cmds: readonly Command[], ms: number): Promise<Command[]> {
    const at = (i: number): number => PAYLOAD.CMDS + COMMAND_SIZE * i;
    cmds.forEach((c, i) => {
      must(this.mem.writeU32(at(i), c.op));
      must(this.mem.writeU32(at(i) + 4, c.addr >>> 0));
      must(this.mem.writeU32(at(i) + 8, (c.value ?? 0) >>> 0));
      must(this.mem.writeU32(at(i) + 12, (c.extra ?? 0) >>> 0));
    });
    must(this.mem.writeU32(at(cmds.length), OP.END));
    this.seq++;
    must(this.mem.writeU32(PAYLOAD.SEQ, this.seq));
    const deadline = performance.now() + ms;
    while (must(this.mem.readU32(PAYLOAD.DONE)) !== this.seq) {
      if (!this.alive()) throw new Error(`the hostile guest stopped during batch ${this.seq}`);
      if (performance.now() > deadline) throw new Error(`the hostile guest did not finish batch ${this.seq} (${cmds.length} commands) in ${ms / 1000} s`);
      await new Promise((r) => setTimeout(r, 2));
    }
    this.executed += cmds.length;
    return cmds.map((c, i) => ({ ...c, value: must(this.mem.readU32(at(i) + 8)), extra: must(this.mem.readU32(at(i) + 12)) }));
  }

  async read32(addr: number): Promise<number> {
    return (await this.run([{ op: OP.R32, addr }]))[0]!.extra!;
  }
}

/**
 * A BusDevice that records writes as guest commands at `base + offset`, so the driver helpers
 * of test/helpers/mock-queue.ts (mmioDriverInit, mmioSetupQueue, mmioDriverOk, mmioWrite32)
 * program a real device through the hostile guest's stores. Reads need a round trip: use
 * HostileCpu.read32.
 */
export class RecordingBus implements BusDevice {
  readonly cmds: Command[] = [];
  constructor(readonly base: number) {}
  write(offset: number, data: Uint8Array): void {
    const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const addr = this.base + offset;
    if (data.length === 4) this.cmds.push({ op: OP.W32, addr, value: v.getUint32(0, true) });
    else if (data.length === 2) this.cmds.push({ op: OP.W16, addr, value: v.getUint16(0, true) });
    else if (data.length === 1) this.cmds.push({ op: OP.W8, addr, value: data[0] });
    else throw new Error(`RecordingBus: ${data.length}-byte write`);
  }
  read(): void {
    throw new Error('RecordingBus records writes only; read through HostileCpu');
  }
  /** The recorded commands, emptied. */
  take(): Command[] {
    return this.cmds.splice(0);
  }
}
