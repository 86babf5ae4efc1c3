/**
 * The ACPI-only devices every Firecracker VM has (src/vmm/src/devices/acpi/, device_manager/
 * acpi.rs): VMGenID, VMClock and the Generic Event Device that notifies them.
 *
 * - VMGenID (`_SB_.VGEN`, _HID "VMGENCTR"; Microsoft's "Virtual Machine Generation ID"
 *   specification): a 128-bit random value in guest memory at ADDR, different for every VM
 *   Firecracker creates. Linux's vmgenid driver (drivers/virt/vmgenid.c) reads it and feeds it
 *   to the RNG, and re-reads it on a notify: a snapshot restore writes a new one and raises
 *   the GED interrupt (`newGeneration`), so clones of one snapshot do not share RNG state.
 * - VMClock (`_SB_.VCLK`, _HID "AMZNC10C"): a page holding `struct vmclock_abi` (Linux
 *   include/uapi/linux/vmclock-abi.h) in its initial state: magic, size, version 1, no counter,
 *   status unknown, flags "VM generation counter present | notification present".
 * - GED (`_SB_.GED_`, ACPI0013, ACPI 6.5 §5.6.9): one interrupt per device above, and an _EVT
 *   method that notifies (0x80) the device whose GSI fired.
 *
 * Each takes a GSI after the virtio devices (layout.ts `interruptLayout`) and memory at the top
 * of the system region (VMGENID_ADDR, VMCLOCK_ADDR). Only a snapshot restore raises the
 * VMGenID interrupt, once, from the main thread, so no irqfd is registered for them.
 */
import { AcpiError } from '../../../errors.js';
import { must, type GuestMemory } from '../../../memory/guest-memory.js';
import { VMCLOCK_ADDR, VMCLOCK_SIZE, VMGENID_ADDR, VMGENID_MEM_SIZE } from '../layout.js';
import {
  arg, byteConst, concat, device, dwordConst, ifThen, interrupt, lEqual, method, name, notify, packageOf, qwordMemory,
  resourceTemplate, returnValue, string, type AmlBytes, type InterruptFlags,
} from './aml.js';

/** Where the ACPI devices sit and which GSIs they use. */
export interface AcpiDevicesPlan {
  readonly vmgenid: { readonly addr: number; readonly gsi: number };
  readonly vmclock: { readonly addr: number; readonly gsi: number };
}

/** The addresses Firecracker gives them, with the GSIs of `interruptLayout`. */
export function acpiDevicesPlan(gsis: { vmgenid: number; vmclock: number }): AcpiDevicesPlan {
  return { vmgenid: { addr: VMGENID_ADDR, gsi: gsis.vmgenid }, vmclock: { addr: VMCLOCK_ADDR, gsi: gsis.vmclock } };
}

export const VMGENID_PATH = '_SB_.VGEN';
export const VMGENID_HID = 'VMGENCTR';
export const VMGENID_CID = 'VM_Gen_Counter';
export const VMCLOCK_PATH = '_SB_.VCLK';
export const VMCLOCK_HID = 'AMZNC10C';
export const VMCLOCK_CID = 'VMCLOCK';
export const GED_PATH = '_SB_.GED_';
export const GED_HID = 'ACPI0013';
/** _STA "present, enabled, shown, functioning". */
export const STA_PRESENT_ENABLED = 0x0f;
/** Notify value: device-specific "check" (ACPI 6.5 §5.6.6), as Firecracker sends. */
export const NOTIFY_DEVICE_CHECK = 0x80;

/** The GED's interrupts: consumer, edge, active-high, exclusive (aml::Interrupt::new(true, true, false, false)). */
const GED_IRQ: InterruptFlags = { edge: true, activeLow: false, shared: false };

/** `struct vmclock_abi` (Linux include/uapi/linux/vmclock-abi.h): the fields Firecracker sets at boot. */
export const VMCLOCK_ABI = {
  MAGIC_OFFSET: 0, SIZE_OFFSET: 4, VERSION_OFFSET: 8, COUNTER_ID_OFFSET: 10, FLAGS_OFFSET: 24, CLOCK_STATUS_OFFSET: 34,
  /** sizeof(struct vmclock_abi). */
  BYTES: 112,
} as const;
/** "VCLK" read as a little-endian u32. */
export const VMCLOCK_MAGIC = 0x4b4c4356;
export const VMCLOCK_VERSION = 1;
export const VMCLOCK_COUNTER_INVALID = 0xff;
export const VMCLOCK_STATUS_UNKNOWN = 0;
export const VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT = 1n << 8n;
export const VMCLOCK_FLAG_NOTIFICATION_PRESENT = 1n << 9n;

/** Device (_SB_.VGEN) { _HID "VMGENCTR", _CID/_DDN "VM_Gen_Counter", ADDR Package { low, high } }. */
export function vmgenidAml(addr: number): AmlBytes {
  return device(VMGENID_PATH, [
    name('_HID', string(VMGENID_HID)),
    name('_CID', string(VMGENID_CID)),
    name('_DDN', string(VMGENID_CID)),
    name('ADDR', packageOf([dwordConst(addr % 2 ** 32), dwordConst(Math.floor(addr / 2 ** 32))])),
  ]);
}

/** Device (_SB_.VCLK) { _HID "AMZNC10C", _CID/_DDN "VMCLOCK", _STA → 0x0F, _CRS { QWordMemory(page) } }. */
export function vmclockAml(addr: number): AmlBytes {
  const min = BigInt(addr);
  return device(VMCLOCK_PATH, [
    name('_HID', string(VMCLOCK_HID)),
    name('_CID', string(VMCLOCK_CID)),
    name('_DDN', string(VMCLOCK_CID)),
    method('_STA', 0, false, [returnValue(byteConst(STA_PRESENT_ENABLED))]),
    name('_CRS', resourceTemplate([qwordMemory(min, min + BigInt(VMCLOCK_SIZE) - 1n, { cacheable: true, readWrite: false })])),
  ]);
}

/** Device (_SB_.GED_) { _HID "ACPI0013", _CRS { Interrupt per device }, Method (_EVT, 1, Serialized) { If (Arg0 == gsi) Notify } }. */
export function gedAml(plan: AcpiDevicesPlan): AmlBytes {
  const onGsi = (gsi: number, target: string): AmlBytes => ifThen(lEqual(arg(0), byteConst(gsi)), [notify(`\\${target}`, byteConst(NOTIFY_DEVICE_CHECK))]);
  return device(GED_PATH, [
    name('_HID', string(GED_HID)),
    name('_CRS', resourceTemplate([interrupt(plan.vmgenid.gsi, GED_IRQ), interrupt(plan.vmclock.gsi, GED_IRQ)])),
    method('_EVT', 1, true, [onGsi(plan.vmgenid.gsi, VMGENID_PATH), onGsi(plan.vmclock.gsi, VMCLOCK_PATH)]),
  ]);
}

/** The three devices' AML, in Firecracker's DSDT order (after the virtio devices). */
export function acpiDevicesAml(plan: AcpiDevicesPlan): AmlBytes {
  if (plan.vmgenid.gsi === plan.vmclock.gsi) throw new AcpiError(`VMGenID and VMClock share GSI ${plan.vmgenid.gsi}`);
  return concat([vmgenidAml(plan.vmgenid.addr), vmclockAml(plan.vmclock.addr), gedAml(plan)]);
}

/**
 * What the devices show the guest at boot (`activate`): the generation id (16 bytes, as
 * Firecracker writes its u128 little-endian) and the VMClock page's initial struct.
 */
export function writeAcpiDeviceData(mem: GuestMemory, plan: AcpiDevicesPlan, generationId: Uint8Array): void {
  if (generationId.length !== VMGENID_MEM_SIZE) throw new AcpiError(`a VMGenID generation id has ${VMGENID_MEM_SIZE} bytes, not ${generationId.length}`);
  must(mem.write(plan.vmgenid.addr, generationId));
  const abi = new Uint8Array(VMCLOCK_ABI.BYTES);
  const v = new DataView(abi.buffer);
  v.setUint32(VMCLOCK_ABI.MAGIC_OFFSET, VMCLOCK_MAGIC, true);
  v.setUint32(VMCLOCK_ABI.SIZE_OFFSET, VMCLOCK_SIZE, true);
  v.setUint16(VMCLOCK_ABI.VERSION_OFFSET, VMCLOCK_VERSION, true);
  abi[VMCLOCK_ABI.COUNTER_ID_OFFSET] = VMCLOCK_COUNTER_INVALID;
  v.setBigUint64(VMCLOCK_ABI.FLAGS_OFFSET, VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT | VMCLOCK_FLAG_NOTIFICATION_PRESENT, true);
  abi[VMCLOCK_ABI.CLOCK_STATUS_OFFSET] = VMCLOCK_STATUS_UNKNOWN;
  must(mem.write(plan.vmclock.addr, abi));
}

/**
 * A restored VM is a new generation (Firecracker devices/acpi/vmgenid.rs, used at restore by
 * device_manager/acpi.rs): a fresh 128-bit id in guest memory, then one edge on the VMGenID
 * GSI, which the GED's _EVT turns into Notify(VGEN, 0x80); Linux's vmgenid driver then
 * re-reads the id and reseeds its RNG.
 */
export function newGeneration(mem: GuestMemory, plan: AcpiDevicesPlan, generationId: Uint8Array, pulse: (gsi: number) => void): void {
  if (generationId.length !== VMGENID_MEM_SIZE) throw new AcpiError(`a VMGenID generation id has ${VMGENID_MEM_SIZE} bytes, not ${generationId.length}`);
  must(mem.write(plan.vmgenid.addr, generationId));
  pulse(plan.vmgenid.gsi);
}
