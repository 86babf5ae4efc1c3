/**
 * Command batches for the hostile guest (hostile-cpu.ts) that abuse registers rather than
 * rings: every virtio-mmio register at every width, nonsense status transitions, broken queue
 * layouts at DRIVER_OK (virtio 1.1 §4.2.2–§4.2.3, Firecracker devices/virtio/transport/mmio.rs),
 * and port I/O and MMIO where nothing — or only a legacy device — listens.
 *
 * Each batch comes with the reads whose results the test asserts. Nothing here may stop the
 * VM: the one guest action that legitimately does (0xFE to i8042 port 0x64, a CPU reset) is
 * left out of the hammering and used by the test at the very end.
 */
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_DRIVER_FEATURES,
  VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_MAGIC,
  VIRTIO_MMIO_MAGIC_VALUE, VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_REGION_SIZE, VIRTIO_MMIO_STATUS, VIRTIO_MMIO_VERSION,
  VIRTIO_ID_BLOCK, VIRTIO_F_VERSION_1, featureBit,
} from '../../src/devices/virtio/constants.js';
import { I8042_COMMAND_PORT, I8042_DATA_PORT, SERIAL_COM1_PORT } from '../../src/arch/x86_64/layout.js';
import { OP, RecordingBus, type Command } from './hostile-cpu.js';
import { mmioDriverInit, mmioDriverOk, mmioSetupQueue, mmioWrite32 } from './mock-queue.js';
import type { QueueConfig } from '../../src/devices/virtio/queue.js';

/** Offsets of the 32-bit register file (0x000–0x0fc). */
const REGISTER_OFFSETS = Array.from({ length: VIRTIO_MMIO_CONFIG / 4 }, (_, i) => i * 4);
/** Per-width write ops, and read ops with the all-ones value a floating bus returns. */
const WRITES = [OP.W8, OP.W16, OP.W32, OP.W64] as const;
const READS = [
  { op: OP.R8, ones: 0xff }, { op: OP.R16, ones: 0xffff }, { op: OP.R32, ones: 0xffff_ffff }, { op: OP.R64, ones: 0xffff_ffff },
] as const;
const I8042_RESET_CPU = 0xfe;
/** ACKNOWLEDGE | DRIVER | FEATURES_OK: negotiated, queues being set up (§3.1.1 step 5). */
const STATUS_FEATURES_OK = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;

/** A batch and the checks on its results (`extra` holds a read's value; R64: `value` low, `extra` high). */
export interface Batch {
  readonly name: string;
  readonly cmds: Command[];
  /** Index → expected `extra` (for R64 the high half; the low half must equal it too when all-ones). */
  readonly expect: ReadonlyMap<number, number>;
}

function batch(name: string, build: (push: (c: Command, expected?: number) => void) => void): Batch {
  const cmds: Command[] = [];
  const expect = new Map<number, number>();
  build((c, expected) => {
    if (expected !== undefined) expect.set(cmds.length, expected);
    cmds.push(c);
  });
  return { name, cmds, expect };
}

/** Register abuse on a device that is not activated; each batch ends with the status at 0. */
export function registerAbuse(base: number, capacity: bigint): Batch[] {
  const reset = { op: OP.W32, addr: base + VIRTIO_MMIO_STATUS, value: 0 };
  return [
    batch('read every register at widths 1, 2, 4, 8 and unaligned', (push) => {
      for (const off of REGISTER_OFFSETS) {
        for (const r of READS) push({ op: r.op, addr: base + off }, r.op === OP.R32 ? undefined : 0);
        push({ op: OP.R32, addr: base + off + 1 }, 0);
      }
      push({ op: OP.R32, addr: base + VIRTIO_MMIO_MAGIC_VALUE }, VIRTIO_MMIO_MAGIC);
      push({ op: OP.R32, addr: base + VIRTIO_MMIO_VERSION }, 2);
      push({ op: OP.R32, addr: base + VIRTIO_MMIO_DEVICE_ID }, VIRTIO_ID_BLOCK);
    }),
    batch('0xffffffff into every register (FAILED latches), then reset', (push) => {
      for (const off of REGISTER_OFFSETS) push({ op: OP.W32, addr: base + off, value: 0xffff_ffff });
      push({ op: OP.R32, addr: base + VIRTIO_MMIO_STATUS }, VIRTIO_CONFIG_S_FAILED);
      push(reset);
      push({ op: OP.R32, addr: base + VIRTIO_MMIO_STATUS }, 0);
    }),
    batch('1-, 2- and 8-byte and unaligned writes to every register', (push) => {
      for (const off of REGISTER_OFFSETS) {
        for (const op of [OP.W8, OP.W16, OP.W64]) push({ op, addr: base + off, value: 0xffff_ffff, extra: 0xffff_ffff });
        push({ op: OP.W32, addr: base + off + 2, value: 0x0f });
      }
      push({ op: OP.R32, addr: base + VIRTIO_MMIO_STATUS }, 0);
    }),
    batch('config space at every width, past its end and across the window edge', (push) => {
      push({ op: OP.W32, addr: base + VIRTIO_MMIO_STATUS, value: VIRTIO_CONFIG_S_ACKNOWLEDGE });
      push({ op: OP.W32, addr: base + VIRTIO_MMIO_STATUS, value: VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER });
      for (let off = VIRTIO_MMIO_CONFIG; off < VIRTIO_MMIO_CONFIG + 16; off++) {
        for (const op of WRITES) push({ op, addr: base + off, value: 0xdead_beef, extra: 0xdead_beef });
      }
      // An 8-byte access at 0xffc crosses into the next 4 KiB window; KVM splits it.
      push({ op: OP.W64, addr: base + VIRTIO_MMIO_REGION_SIZE - 4, value: 0x1234_5678, extra: 0x9abc_def0 });
      push({ op: OP.R64, addr: base + VIRTIO_MMIO_REGION_SIZE - 4 });
      push({ op: OP.R32, addr: base + VIRTIO_MMIO_CONFIG + 0x800 }, 0);
      push({ op: OP.R32, addr: base + VIRTIO_MMIO_CONFIG }, Number(capacity & 0xffff_ffffn));
      push({ op: OP.R32, addr: base + VIRTIO_MMIO_CONFIG + 4 }, Number(capacity >> 32n));
      push(reset);
      push({ op: OP.R32, addr: base + VIRTIO_MMIO_STATUS }, 0);
    }),
    batch('status transitions out of order, unoffered features, FEATURES_OK twice', (push) => {
      for (const v of [0x4, 0x8, 0x2, 0xf, 0x40, 0x7f]) push({ op: OP.W32, addr: base + VIRTIO_MMIO_STATUS, value: v });
      push({ op: OP.R32, addr: base + VIRTIO_MMIO_STATUS }, 0);
      const bus = new RecordingBus(base);
      mmioDriverInit(bus, 2n ** 64n - 1n, []); // every feature bit, pages 0 and 1
      for (const page of [2, 7, 0xffff_ffff]) {
        mmioWrite32(bus, VIRTIO_MMIO_DRIVER_FEATURES_SEL, page);
        mmioWrite32(bus, VIRTIO_MMIO_DRIVER_FEATURES, 0xffff_ffff);
      }
      mmioWrite32(bus, VIRTIO_MMIO_STATUS, STATUS_FEATURES_OK);
      bus.take().forEach((c) => push(c));
      push({ op: OP.R32, addr: base + VIRTIO_MMIO_STATUS }, STATUS_FEATURES_OK);
      push(reset);
      push({ op: OP.R32, addr: base + VIRTIO_MMIO_STATUS }, 0);
    }),
  ];
}

/**
 * DRIVER_OK over one broken queue layout each: the transport must refuse activation with
 * DEVICE_NEEDS_RESET and a config interrupt, and a reset must clear it.
 */
export function brokenLayouts(base: number, good: QueueConfig, ramEnd: number): Batch[] {
  const variants: [string, Partial<QueueConfig> & { ready?: boolean; sel?: number }][] = [
    ['queue never made ready', { ready: false }],
    ['queue size 0', { size: 0 }],
    ['queue size 3 (not a power of two)', { size: 3 }],
    ['queue size 512 (above QueueNumMax)', { size: 512 }],
    ['queue size 0xffff', { size: 0xffff }],
    ['descriptor table misaligned by 8', { descTable: good.descTable + 8 }],
    ['descriptor table straddling the end of RAM', { descTable: ramEnd - 4096 + 16 * 64 }],
    ["avail ring on the device's own registers", { availRing: base }],
    ['used ring at 2^64 - 4096', { usedRing: 2 ** 64 - 4096 }],
    ['descriptor table above 4 GiB', { descTable: 2 ** 32 + good.descTable }],
    ['queue fields written with QueueSel 7', { sel: 7 }],
    ['queue fields written with QueueSel 0xffffffff', { sel: 0xffff_ffff }],
  ];
  return variants.map(([name, v]) => batch(`DRIVER_OK with ${name}`, (push) => {
    const bus = new RecordingBus(base);
    mmioDriverInit(bus, featureBit(VIRTIO_F_VERSION_1), []);
    mmioSetupQueue(bus, 0, { config: { ...good, ...v } }, v.ready ?? true);
    if (v.sel !== undefined) {
      // Re-run the queue programming against the bogus selector: it must land nowhere.
      const cmds = bus.take();
      const sel = cmds.findIndex((c) => c.addr === base + VIRTIO_MMIO_QUEUE_SEL);
      cmds[sel] = { ...cmds[sel]!, value: v.sel };
      cmds.forEach((c) => push(c));
    }
    mmioDriverOk(bus);
    bus.take().forEach((c) => push(c));
    push({ op: OP.R32, addr: base + VIRTIO_MMIO_STATUS }, STATUS_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_NEEDS_RESET);
    push({ op: OP.R32, addr: base + VIRTIO_MMIO_INTERRUPT_STATUS }, VIRTIO_MMIO_INT_CONFIG);
    push({ op: OP.W32, addr: base + VIRTIO_MMIO_STATUS, value: 0 });
    push({ op: OP.R32, addr: base + VIRTIO_MMIO_STATUS }, 0);
  }));
}

/** Unknown ports (no device on them in Kindling; KVM's in-kernel PIC/PIT/RTC-less ranges avoided). */
const UNKNOWN_PORTS = [0x00, 0x80, 0x70, 0x71, 0x92, 0x2f8, 0x3e8, 0x3f0, 0x402, 0x510, 0x604, 0xcf8, 0xcfc, 0xb000, 0xfffc, 0xfffe];
/** MMIO addresses outside RAM with no device (the IOAPIC, LAPIC and TSS pages are KVM's own). */
export function unknownMmio(ramEnd: number, lastDevice: number): number[] {
  return [ramEnd, ramEnd + 0x1000, 0x1000_0000, 0xbfff_f000, 0xc000_0000, lastDevice + 0x1000, 0xc010_0000, 0xd000_0000, 0xeec0_0000, 0xfeb0_0000, 0xffff_f000];
}

/**
 * Port and MMIO hammering: the serial port and i8042 at every width with nonsense values
 * (the i8042 CPU-reset command excepted), unknown ports and unknown MMIO (reads must float to
 * all-ones), and string I/O of a page at a time. `scratch` is a 4 KiB RAM buffer.
 */
export function hammering(ramEnd: number, lastDevice: number, scratch: number): Batch[] {
  const widths = [[OP.OUTB, OP.INB, 0xff], [OP.OUTW, OP.INW, 0xffff], [OP.OUTL, OP.INL, 0xffff_ffff]] as const;
  return [
    batch('serial COM1: every register, every width, loopback and DLAB', (push) => {
      for (let port = SERIAL_COM1_PORT; port < SERIAL_COM1_PORT + 8; port++) {
        for (const v of [0x00, 0xff, 0x80, 0x5a, 0x10, 0x01]) {
          push({ op: OP.OUTB, addr: port, value: v });
          push({ op: OP.INB, addr: port });
        }
        push({ op: OP.OUTW, addr: port, value: 0xffff });
        push({ op: OP.INL, addr: port });
      }
      push({ op: OP.REP_INSB, addr: SERIAL_COM1_PORT, value: scratch, extra: 4096 });
      push({ op: OP.OUTB, addr: SERIAL_COM1_PORT + 3, value: 0x03 }); // LCR: 8N1, DLAB off
      push({ op: OP.OUTB, addr: SERIAL_COM1_PORT + 4, value: 0x00 }); // MCR: loopback off
      push({ op: OP.OUTB, addr: SERIAL_COM1_PORT + 1, value: 0x00 }); // IER: no interrupts
    }),
    batch('i8042: every byte to both ports except the CPU reset, reads, wide accesses', (push) => {
      for (let v = 0; v < 256; v++) {
        push({ op: OP.OUTB, addr: I8042_DATA_PORT, value: v });
        if (v !== I8042_RESET_CPU) push({ op: OP.OUTB, addr: I8042_COMMAND_PORT, value: v });
        push({ op: OP.INB, addr: v % 2 ? I8042_DATA_PORT : I8042_COMMAND_PORT });
      }
      for (const port of [I8042_DATA_PORT, I8042_COMMAND_PORT]) {
        push({ op: OP.OUTW, addr: port, value: 0xfefe });
        push({ op: OP.OUTL, addr: port, value: 0xfefe_fefe });
        push({ op: OP.INW, addr: port });
        push({ op: OP.INL, addr: port });
      }
    }),
    batch('unknown ports at every width, and 4 KiB string I/O', (push) => {
      for (const port of UNKNOWN_PORTS) {
        for (const [out, inp, ones] of widths) {
          push({ op: out, addr: port, value: 0xa5a5_a5a5 });
          push({ op: inp, addr: port }, ones);
        }
      }
      push({ op: OP.REP_OUTSB, addr: 0x80, value: scratch, extra: 4096 });
      push({ op: OP.REP_INSB, addr: 0x80, value: scratch, extra: 4096 });
      push({ op: OP.R32, addr: scratch }, 0xffff_ffff);
      push({ op: OP.R32, addr: scratch + 4092 }, 0xffff_ffff);
    }),
    batch('unknown MMIO at every width', (push) => {
      for (const addr of unknownMmio(ramEnd, lastDevice)) {
        for (const op of WRITES) push({ op, addr, value: 0x5a5a_5a5a, extra: 0x5a5a_5a5a });
        for (const r of READS) push({ op: r.op, addr }, r.ones);
      }
    }),
  ];
}

/** Bytes the guest writes to COM1 after the hammering, to show the serial port still works. */
export function serialLine(text: string): Command[] {
  return [...Buffer.from(`${text}\n`)].map((b) => ({ op: OP.OUTB, addr: SERIAL_COM1_PORT, value: b }));
}
