/**
 * Builds a vCPU worker's port-IO and MMIO buses from the DeviceManifest main sent it.
 * Each worker constructs its own device objects over the *shared* state buffers, so every
 * vCPU (and main) sees one device; the models serialize access themselves.
 */
import { Bus } from '../../devices/bus.js';
import { DebugPort } from '../../devices/debug-port.js';
import { Serial, I8042, BootTimer, bootTimeSince, formatBootTime, BOOT_TIMER_MMIO_SIZE } from '../../devices/legacy/index.js';
import { SERIAL_PORT_SIZE, I8042_BUS_PORTS } from '../../arch/x86_64/layout.js';
import { VCPU_EXIT_KIND } from './protocol.js';
import { MmioTransport } from '../../devices/virtio/mmio.js';
import { blockDescription } from '../../devices/virtio/block/device.js';
import { netDescription } from '../../devices/virtio/net/config.js';
import { NetMetrics } from '../../devices/virtio/net/metrics.js';
import { vsockDescription } from '../../devices/virtio/vsock/config.js';
import { VsockMetrics } from '../../devices/virtio/vsock/metrics.js';
import { entropyDescription } from '../../devices/virtio/rng/device.js';
import { fsDescription } from '../../devices/virtio/fs/device.js';
import { BalloonConfig, balloonDescription } from '../../devices/virtio/balloon/config.js';
import { MemConfig, memDescription } from '../../devices/virtio/mem/config.js';
import { pmemDescription } from '../../devices/virtio/pmem/device.js';
import { PmemMetrics } from '../../devices/virtio/pmem/metrics.js';
import type { VirtioDeviceDescription } from '../../devices/virtio/device.js';
import { VIRTIO_MMIO_REGION_SIZE } from '../../devices/virtio/constants.js';
import { EventFd } from '../../kvm/eventfd.js';
import { encodeGsiRouting, legacyRoutes, type GsiRoute } from '../../kvm/gsi-routing.js';
import { PciConfigIo, PciEcam, PciMmioWindow, PciRoot, PCI_CONFIG_IO_PORT, PCI_CONFIG_IO_SIZE } from '../../devices/pci/root.js';
import { MsiRoutes } from '../../devices/pci/msi-routes.js';
import { VirtioPciTransport } from '../../devices/virtio/pci.js';
import type { VirtioPciDoorbells } from '../virtio/virtio-actor.js';
import type { VmFd } from '../../kvm/kvm.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { DeviceManifest, VcpuExitKind } from './protocol.js';

/** What devices may ask of the vCPU loop. */
export interface ExitSink {
  /** End this vCPU's loop after the current exit, with this kind (e.g. i8042 reset). */
  requestExit(kind: VcpuExitKind): void;
  /** A rare log line for the main thread (never per exit). */
  log(level: 'info' | 'warn' | 'error', message: string): void;
}

export interface BusContext {
  vm: VmFd;
  mem: GuestMemory;
  sink: ExitSink;
}

/** The port-IO and MMIO buses for one vCPU worker. */
export function buildBuses(manifest: readonly DeviceManifest[], ctx: BusContext): { pio: Bus; mmio: Bus } {
  const pio = new Bus();
  const mmio = new Bus();
  const pci = pciRoot(manifest, ctx, pio, mmio);
  const virtioTransport = (d: VirtioEntry, desc: VirtioDeviceDescription, name: string): void => attachVirtio(ctx, mmio, pci, d, desc, name);
  for (const d of manifest) {
    switch (d.kind) {
      case 'pci-root':
        break; // set up before the loop
      case 'debug-port':
        pio.insert(d.port, 1, new DebugPort(d.ring));
        break;
      case 'serial': {
        const gsi = d.gsi;
        pio.insert(d.port, SERIAL_PORT_SIZE, new Serial(d.state, (level) => ctx.vm.irqLine(gsi, level)));
        break;
      }
      case 'i8042': {
        const gsi = d.gsi;
        // 0xFE on port 0x64: the guest asks for a CPU reset, which Firecracker turns into a VMM exit (code 0).
        pio.insert(d.port, I8042_BUS_PORTS, new I8042(d.state, (level) => ctx.vm.irqLine(gsi, level), () => ctx.sink.requestExit(VCPU_EXIT_KIND.RESET)));
        break;
      }
      case 'boot-timer': {
        const start = { wallUs: d.startWallUs, cpuUs: d.startCpuUs };
        mmio.insert(d.addr, BOOT_TIMER_MMIO_SIZE, new BootTimer(() => {
          const t = bootTimeSince(start);
          ctx.sink.log('info', formatBootTime(t.wallUs, t.cpuUs));
        }));
        break;
      }
      case 'virtio-block': {
        const desc = blockDescription({ diskSizeBytes: d.diskSizeBytes, readOnly: d.readOnly, cacheType: d.cacheType }, new Uint8Array(d.config));
        virtioTransport({ ...d, queueFds: [d.queueFd] }, desc, 'virtio-block');
        break;
      }
      case 'virtio-net': {
        const params = { guestMac: d.guestMac ? Uint8Array.from(d.guestMac) : null, mtu: d.mtu };
        const desc = netDescription(params, new Uint8Array(d.config), new NetMetrics(d.metrics));
        virtioTransport(d, desc, 'virtio-net');
        break;
      }
      case 'virtio-vsock': {
        const desc = vsockDescription(d.guestCid, new VsockMetrics(d.metrics));
        virtioTransport(d, desc, 'virtio-vsock');
        break;
      }
      case 'virtio-rng':
        virtioTransport(d, entropyDescription(), 'virtio-rng');
        break;
      case 'virtio-fs':
        virtioTransport(d, fsDescription(d.tag, d.backendFeatures), 'virtio-fs');
        break;
      case 'virtio-balloon': {
        // The driver's writes of `actual` land in the shared config bytes here, on the vCPU thread.
        const desc = balloonDescription({ deflateOnOom: d.deflateOnOom, statsEnabled: d.statsEnabled, reporting: d.reporting, hinting: d.hinting }, new BalloonConfig(d.config));
        virtioTransport(d, desc, 'virtio-balloon');
        break;
      }
      case 'virtio-pmem': {
        const metrics = new PmemMetrics(d.metrics);
        virtioTransport(d, pmemDescription(d.start, d.size, () => metrics.inc('cfg_fails')), 'virtio-pmem');
        break;
      }
      case 'virtio-mem': {
        // The config is read-only for the driver (§5.15.4): a write is only logged, as Firecracker
        // does; guest-triggered, so the first few only.
        let warned = 0;
        const onWrite = (off: number): void => {
          if (warned++ < 10) ctx.sink.log('warn', `virtio-mem: guest driver attempted to write device config (offset=0x${off.toString(16)})`);
        };
        virtioTransport(d, memDescription(new MemConfig(d.config), onWrite), 'virtio-mem');
        break;
      }
      default: {
        const never: never = d;
        throw new Error(`unknown device kind ${(never as { kind: string }).kind}`);
      }
    }
  }
  return { pio, mmio };
}

/** What a vCPU needs of any virtio device's manifest entry. */
interface VirtioEntry {
  addr: number;
  state: SharedArrayBuffer;
  ctlFd: number;
  queueFds: number[];
  irqFd: number;
  pci: VirtioPciDoorbells | null;
}

/** The PCI root of this vCPU (ECAM, ports 0xcf8..0xcff, the 64-bit BAR window), when the VM has PCI. */
function pciRoot(manifest: readonly DeviceManifest[], ctx: BusContext, pio: Bus, mmio: Bus): { root: PciRoot; routes: MsiRoutes } | undefined {
  const d = manifest.find((m): m is Extract<DeviceManifest, { kind: 'pci-root' }> => m.kind === 'pci-root');
  if (!d) return undefined;
  const root = new PciRoot(d.state);
  mmio.insert(d.ecamAddr, d.ecamSize, new PciEcam(root));
  pio.insert(PCI_CONFIG_IO_PORT, PCI_CONFIG_IO_SIZE, new PciConfigIo(root));
  mmio.insert(d.windowAddr, d.windowSize, new PciMmioWindow(root, d.windowAddr));
  return { root, routes: new MsiRoutes(d.routes, d.msiGsiStart) };
}

/**
 * A virtio device's transport served here, on the vCPU thread, from its shared state: a
 * virtio-mmio register window, or a virtio-pci function on the PCI root. The device worker
 * only learns of DRIVER_OK (ctl doorbell) and of queue notifies (ioeventfd; `onNotify` rings
 * the same eventfd when a notify reaches the bus instead).
 */
function attachVirtio(
  ctx: BusContext, mmio: Bus, pci: { root: PciRoot; routes: MsiRoutes } | undefined, d: VirtioEntry, desc: VirtioDeviceDescription, name: string,
): void {
  const ctl = new EventFd(d.ctlFd);
  const queues = d.queueFds.map((fd) => new EventFd(fd));
  const irq = new EventFd(d.irqFd);
  let warned = 0;
  const where = d.pci ? `00:${d.pci.slot.toString(16).padStart(2, '0')}.0` : `0x${d.addr.toString(16)}`;
  // Guest-triggered: log the first few only.
  const warn = (m: string): void => { if (warned++ < 10) ctx.sink.log('warn', `${name} at ${where}: ${m}`); };
  if (!d.pci) {
    mmio.insert(d.addr, VIRTIO_MMIO_REGION_SIZE, new MmioTransport(d.state, desc, {
      onActivate: () => ctl.signal(),
      onNotify: (q) => queues[q]?.signal(),
      interrupt: () => irq.signal(),
      onReset: () => false,
      warn,
    }, ctx.mem));
    return;
  }
  if (!pci) throw new Error(`${name}: a virtio-pci device without a PCI root in the manifest`);
  const p = d.pci;
  const vectors = p.vectorFds.map((fd) => new EventFd(fd));
  const routes = pci.routes;
  pci.root.attach(p.slot, new VirtioPciTransport(d.state, p.state, desc, {
    deviceId: p.deviceId, numQueues: queues.length, numVectors: vectors.length, barAddr: p.barAddr,
  }, {
    onActivate: () => ctl.signal(),
    onNotify: (q) => queues[q]?.signal(),
    signalVector: (v) => vectors[v]?.signal(),
    updateRoutes: (changes) => {
      try {
        routes.update(changes.map((c) => ({ gsi: p.gsiBase + c.vector, message: c.message })), (all) => {
          const msi: GsiRoute[] = all.map((r) => ({ kind: 'msi', ...r }));
          ctx.vm.setGsiRouting(encodeGsiRouting([...legacyRoutes(), ...msi]));
        });
      } catch (e) {
        warn(`MSI-X routing update failed: ${(e as Error).message}`);
      }
    },
    injectMsi: (m) => {
      try {
        ctx.vm.signalMsi(m.addressLo, m.addressHi, m.data);
      } catch (e) {
        warn(`MSI injection failed: ${(e as Error).message}`);
      }
    },
    warn,
  }, ctx.mem));
}
