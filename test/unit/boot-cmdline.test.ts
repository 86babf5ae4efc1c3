/**
 * Kernel command line builder (src/boot/cmdline.ts): the 2048-byte limit counts the NUL,
 * only printable ASCII, " -- " splits boot args from init args and Kindling's own params go
 * before it (firecracker src/vmm/src/arch/x86_64/layout.rs; linux-loader cmdline semantics).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { arrayGuestMemory } from '../../src/memory/guest-memory.js';
import { CMDLINE_MAX_SIZE, CMDLINE_START } from '../../src/arch/x86_64/layout.js';
import { Cmdline, writeCmdline } from '../../src/boot/cmdline.js';
import { CmdlineError } from '../../src/errors.js';
import { addDeviceArgs } from '../../src/vmm/builder.js';
import { buildBootSource, cmdlineString, DEFAULT_KERNEL_CMDLINE } from '../../src/config/boot-source.js';

function throwsCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, CmdlineError);
    assert.is((e as CmdlineError).code, code);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

test('2047 characters fit (2048 with the NUL); 2048 characters are CMDLINE_TOO_LONG', () => {
  assert.is(CMDLINE_MAX_SIZE, 2048);
  const ok = Cmdline.parse('a'.repeat(2047));
  assert.is(ok.size, 2048);
  throwsCode(() => Cmdline.parse('a'.repeat(2048)), 'CMDLINE_TOO_LONG');
});

test('insertStr past the limit is CMDLINE_TOO_LONG and leaves the line unchanged', () => {
  const c = Cmdline.parse('a'.repeat(2040));
  throwsCode(() => c.insertStr('bbbbbbb'), 'CMDLINE_TOO_LONG'); // 2040 + ' ' + 7 + NUL = 2049
  assert.is(c.toString(), 'a'.repeat(2040));
  c.insertStr('bbbbbb'); // exactly 2048 with the NUL
  assert.is(c.size, 2048);
});

test('a small capacity counts the NUL, like linux-loader', () => {
  const c = new Cmdline(4);
  c.insertStr('abc');
  throwsCode(() => new Cmdline(3).insertStr('abc'), 'CMDLINE_TOO_LONG');
  assert.is(c.size, 4);
});

test('NUL, control and non-ASCII characters are CMDLINE_INVALID_CHAR', () => {
  throwsCode(() => Cmdline.parse('console=ttyS0\0quiet'), 'CMDLINE_INVALID_CHAR');
  throwsCode(() => Cmdline.parse('console=ttyS0\tquiet'), 'CMDLINE_INVALID_CHAR');
  throwsCode(() => Cmdline.parse('root=/dev/vda café'), 'CMDLINE_INVALID_CHAR');
  throwsCode(() => new Cmdline().insertInitArgs('x\ny'), 'CMDLINE_INVALID_CHAR');
  // Like linux-loader, surrounding whitespace (a trailing newline, say) is trimmed, not refused.
  assert.is(new Cmdline().insertStr(' quiet\n').toString(), 'quiet');
});

test('" -- " splits boot args from init args; kernel params are inserted before it', () => {
  const c = Cmdline.parse('  console=ttyS0 reboot=k  --  /bin/sh -c true ');
  assert.is(c.bootArgs, 'console=ttyS0 reboot=k');
  assert.is(c.initArgs, '/bin/sh -c true');
  c.insertStr('pci=off');
  c.insert('virtio_mmio.device', '4K@0xc0001000:5');
  assert.is(c.toString(), 'console=ttyS0 reboot=k pci=off virtio_mmio.device=4K@0xc0001000:5 -- /bin/sh -c true');
  c.insertInitArgs('--verbose');
  assert.is(c.initArgs, '/bin/sh -c true --verbose');
});

test('a " -- " inside double quotes does not split', () => {
  const c = Cmdline.parse('foo="a -- b" bar -- init');
  assert.is(c.bootArgs, 'foo="a -- b" bar');
  assert.is(c.initArgs, 'init');
});

test('init args without boot args render as "-- init"', () => {
  const c = new Cmdline().insertInitArgs('init');
  assert.is(c.toString(), '-- init');
  c.insertStr('quiet');
  assert.is(c.toString(), 'quiet -- init');
});

test('insert rejects bad keys and values with CMDLINE_INVALID_PARAM', () => {
  const c = new Cmdline();
  throwsCode(() => c.insert('a=b', 'c'), 'CMDLINE_INVALID_PARAM');
  throwsCode(() => c.insert('a b', 'c'), 'CMDLINE_INVALID_PARAM');
  throwsCode(() => c.insert('', 'c'), 'CMDLINE_INVALID_PARAM');
  throwsCode(() => c.insert('a', 'b c'), 'CMDLINE_INVALID_PARAM');
  throwsCode(() => c.insert('a', '"b"c"'), 'CMDLINE_INVALID_PARAM');
  c.insert('a', '"b c"');
  assert.is(c.toString(), 'a="b c"');
});

test('writeCmdline puts the NUL-terminated line at CMDLINE_START and returns its size', () => {
  const m = arrayGuestMemory([{ gpa: 0, size: 1 << 20 }]);
  (m.slice(CMDLINE_START, 32) as Uint8Array).fill(0x41);
  const p = writeCmdline(m, 'console=ttyS0 -- init');
  assert.equal(p, { addr: CMDLINE_START, size: 22 });
  assert.is(new TextDecoder().decode(m.slice(CMDLINE_START, 21) as Uint8Array), 'console=ttyS0 -- init');
  assert.is(m.readU8(CMDLINE_START + 21), 0);
});

test('writeCmdline refuses more than CMDLINE_MAX_SIZE even from a larger builder', () => {
  const m = arrayGuestMemory([{ gpa: 0, size: 1 << 20 }]);
  throwsCode(() => writeCmdline(m, new Cmdline(4096).insertStr('x'.repeat(2048))), 'CMDLINE_TOO_LONG');
  assert.is(m.readU8(CMDLINE_START), 0);
});

test('what Firecracker adds: pci=off, then the root drive\'s root= and each device\'s virtio_mmio.device=, in attach order', () => {
  const drive = (id: string, root: boolean, ro = false, partuuid: string | null = null) => ({ drive_id: id, is_root_device: root, is_read_only: ro, partuuid });
  const plan = {
    drives: [{ config: drive('rootfs', true), addr: 0xc000_1000, gsi: 5 }, { config: drive('data', false), addr: 0xc000_2000, gsi: 6 }],
    nets: [{ config: { iface_id: 'eth0' }, addr: 0xc000_3000, gsi: 7 }],
    pmem: [],
  } as unknown as Parameters<typeof addDeviceArgs>[2];
  const c = Cmdline.parse('console=ttyS0 reboot=k -- init-arg');
  addDeviceArgs(c, false, plan);
  assert.is(c.toString(), 'console=ttyS0 reboot=k pci=off root=/dev/vda rw virtio_mmio.device=4K@0xc0001000:5 ' +
    'virtio_mmio.device=4K@0xc0002000:6 virtio_mmio.device=4K@0xc0003000:7 -- init-arg');
  const ro = Cmdline.parse('');
  addDeviceArgs(ro, true, { drives: [{ config: drive('r', true, true, 'abcd-01'), addr: 0xc000_1000, gsi: 5 }], nets: [], pmem: [] } as never);
  assert.is(ro.toString(), 'root=PARTUUID=abcd-01 ro virtio_mmio.device=4K@0xc0001000:5', 'with PCI: no pci=off');
});

test('without boot_args the command line is Firecracker\'s default', () => {
  const b = buildBootSource({ kernel_image_path: '/dev/null', initrd_path: null, boot_args: null });
  assert.is(cmdlineString(b.cmdline), DEFAULT_KERNEL_CMDLINE);
  assert.is(DEFAULT_KERNEL_CMDLINE, 'reboot=k panic=1 nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.dumbkbd swiotlb=noforce');
});

test.run();
