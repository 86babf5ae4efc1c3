/**
 * A hostile guest against the PCI transport under real KVM (issue 18 item 4). The kernel-less
 * payload of hostile-guest.test.ts (test/helpers/hostile-cpu.ts, one vCPU) runs in a microVM
 * started with `--enable-pci` (a drive and the entropy device as virtio-pci functions) and
 * throws at the PCI root:
 *  - seeded random 1/2/4-byte writes over every slot's whole 4 KiB ECAM window (header,
 *    BARs, capabilities, MSI-X control, extended space) and over the 0xcf8..0xcff ports;
 *  - through the VIRTIO_PCI_CAP_PCI_CFG window (the payload addresses 32 bits, BAR 0 is above
 *    4 GiB): MSI-X table entries with bogus addresses and data, MSI-X enabled and unmasked
 *    (KVM_SET_GSI_ROUTING with those messages), vectors past the table, common-config
 *    nonsense, notifies of queues that do not exist.
 * Asserted: every batch finishes (the vCPU keeps running the guest), the VMM is still
 * Running, read-only identity fields are unchanged, empty slots still read all-ones, and the
 * host bytes around guest RAM are untouched.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MicroVm } from 'kindling';
import { MiB, PCI_MMCONFIG_START } from '../../src/arch/x86_64/layout.js';
import { HostileCpu, OP, writeHostileElf, type Command } from '../helpers/hostile-cpu.js';
import { pattern } from '../helpers/block-rig.js';

const RAM_MIB = 128;
const dir = mkdtempSync(join(tmpdir(), 'kindling-hostile-pci-'));
const disk = join(dir, 'a.img');
writeFileSync(disk, pattern(MiB, 0x41));
const logs: string[] = [];
const vm = new MicroVm({
  'boot-source': { kernel_image_path: writeHostileElf(join(dir, 'hostile.elf')), boot_args: '' },
  'machine-config': { vcpu_count: 1, mem_size_mib: RAM_MIB },
  drives: [{ drive_id: 'a', is_root_device: false, path_on_host: disk }],
  entropy: {},
  enablePci: true,
}, { log: (level, msg) => logs.push(`${level}: ${msg}`) });

/** A small deterministic PRNG (mulberry32), so a failure replays. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const ecam = (slot: number, reg: number): number => PCI_MMCONFIG_START + (slot << 15) + reg;
const W = [OP.W8, OP.W16, OP.W32] as const;
const WIDTH = [1, 2, 4] as const;

test('hostile config-space, port and MSI-X abuse over PCI leaves the VMM running and the identity intact', async () => {
  await vm.start();
  const mem = vm.memory;
  const cpu = new HostileCpu(mem, () => vm.state === 'Running');
  await cpu.run([], 60_000);
  const ram = mem.regions[0]!;
  const buf = ram.bytes.buffer as SharedArrayBuffer;
  const canaries = [new Uint8Array(buf, 0, ram.bytes.byteOffset), new Uint8Array(buf, ram.bytes.byteOffset + ram.size)].map((view, i) => {
    view.set(pattern(view.length, 0xb0 + i));
    return { view, want: Uint8Array.from(view) };
  });
  const id = async (slot: number): Promise<number> => (await cpu.read32(ecam(slot, 0))) >>> 0;
  assert.is(await id(0), 0x0d57_8086, 'host bridge');
  assert.is(await id(1), 0x1042_1af4, 'virtio-blk');
  assert.is(await id(2), 0x1044_1af4, 'virtio-rng');
  assert.is(await id(3), 0xffff_ffff, 'empty slot');

  const rand = rng(18);
  // 1. Random writes over every slot's ECAM window (aligned and not, every width) and the ports.
  let sent = 0;
  for (let round = 0; round < 6; round++) {
    const cmds: Command[] = [];
    for (let i = 0; i < 400; i++) {
      const w = Math.floor(rand() * 3);
      const slot = rand() < 0.7 ? 1 + Math.floor(rand() * 2) : Math.floor(rand() * 32);
      // Mostly the header and capabilities, where the state lives; sometimes anywhere.
      const reg = rand() < 0.8 ? Math.floor(rand() * 0x100) : Math.floor(rand() * 0x1000);
      cmds.push({ op: W[w]!, addr: ecam(slot, reg - (reg % WIDTH[w]!) + (rand() < 0.1 ? 1 : 0)), value: Math.floor(rand() * 2 ** 32) });
    }
    for (let i = 0; i < 100; i++) {
      const port = 0xcf8 + Math.floor(rand() * 8);
      const op = [OP.OUTB, OP.OUTW, OP.OUTL, OP.INB, OP.INW, OP.INL][Math.floor(rand() * 6)]!;
      cmds.push({ op, addr: port, value: rand() < 0.5 ? (0x8000_0000 | Math.floor(rand() * 0x10000) << 8) >>> 0 : Math.floor(rand() * 2 ** 32) });
    }
    await cpu.run(cmds, 120_000);
    sent += cmds.length;
  }

  // 2. Through the PCI-cfg window of the drive (slot 1): find the capability, aim it at BAR 0.
  const caps: { at: number; id: number; type: number }[] = [];
  for (let at = (await cpu.read32(ecam(1, 0x34))) & 0xff, n = 0; at !== 0 && n < 48; n++) {
    const head = await cpu.read32(ecam(1, at));
    caps.push({ at, id: head & 0xff, type: (head >>> 24) & 0xff });
    at = (head >>> 8) & 0xff;
  }
  const cfg = caps.find((c) => c.id === 0x09 && c.type === 5);
  const msix = caps.find((c) => c.id === 0x11);
  assert.ok(cfg && msix, `the capability chain survived: ${JSON.stringify(caps)}`);
  const viaWindow = (off: number, value: number, len = 4): Command[] => [
    { op: OP.W8, addr: ecam(1, cfg.at + 4), value: 0 },
    { op: OP.W32, addr: ecam(1, cfg.at + 8), value: off },
    { op: OP.W32, addr: ecam(1, cfg.at + 12), value: len },
    { op: len === 4 ? OP.W32 : len === 2 ? OP.W16 : OP.W8, addr: ecam(1, cfg.at + 16), value },
  ];
  const cmds: Command[] = [{ op: OP.W16, addr: ecam(1, 0x04), value: 0x0006 }]; // memory + bus master
  for (let v = 0; v < 4; v++) {
    // Bogus message addresses (not the APIC window, above 4 GiB, zero) and data, unmasked.
    const entry = 0x8000 + 16 * v;
    cmds.push(...viaWindow(entry, [0xdead_b000, 0, 0xfee0_0000, 0x1000][v]!), ...viaWindow(entry + 4, v === 1 ? 0xffff_ffff : 0));
    cmds.push(...viaWindow(entry + 8, 0x30 + v), ...viaWindow(entry + 12, 0)); // fixed delivery: never INIT or NMI
  }
  cmds.push({ op: OP.W16, addr: ecam(1, msix.at + 2), value: 0x8000 }); // MSI-X on: routes installed
  cmds.push(...viaWindow(0x10, 7, 2), ...viaWindow(0x1a, 0x1234, 2)); // vectors past the table
  cmds.push(...viaWindow(0x14, 0x0f, 1)); // DRIVER_OK out of nowhere
  cmds.push(...viaWindow(0x6000, 0, 2), ...viaWindow(0x6000 + 4 * 9, 9, 2), ...viaWindow(0x6002, 0, 2)); // notifies
  cmds.push(...viaWindow(0x2000, 0, 1), ...viaWindow(0x48000, 0xffff_ffff)); // ISR and PBA writes
  cmds.push(...viaWindow(0x4_0000, 1, 3), ...viaWindow(0x7_fffe, 1, 4)); // bad length, past the BAR
  cmds.push({ op: OP.W16, addr: ecam(1, msix.at + 2), value: 0xc000 }, { op: OP.W16, addr: ecam(1, msix.at + 2), value: 0x8000 });
  cmds.push({ op: OP.W8, addr: ecam(1, cfg.at + 4), value: 3 }, { op: OP.R32, addr: ecam(1, cfg.at + 16) }); // another BAR
  await cpu.run(cmds, 120_000);
  sent += cmds.length;

  // Afterwards: the vCPU still runs the guest, identities and empty slots read as before.
  assert.is(vm.state, 'Running');
  assert.is(await id(0), 0x0d57_8086);
  assert.is(await id(1), 0x1042_1af4);
  assert.is(await id(2), 0x1044_1af4);
  assert.is((await cpu.read32(ecam(1, 0x08))) >>> 8, 0x018000, 'class unchanged');
  assert.is(await id(5), 0xffff_ffff);
  for (const c of canaries) assert.ok(Buffer.from(c.view).equals(Buffer.from(c.want)), 'host bytes around guest RAM unchanged');
  console.log(`    ${sent} hostile accesses; ${logs.filter((l) => l.startsWith('warn')).length} warnings logged (rate limited per device)`);
  assert.not.ok(logs.some((l) => l.startsWith('error')), `no VMM errors: ${logs.filter((l) => l.startsWith('error')).join('\n')}`);
  await vm.stop();
});

test.run();
