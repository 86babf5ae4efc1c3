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
import { BalloonConfig, balloonDescription } from '../../devices/virtio/balloon/config.js';
import type { VirtioDeviceDescription } from '../../devices/virtio/device.js';
import { VIRTIO_MMIO_REGION_SIZE } from '../../devices/virtio/constants.js';
import { EventFd } from '../../kvm/eventfd.js';
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
  for (const d of manifest) {
    switch (d.kind) {
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
        mmio.insert(d.addr, VIRTIO_MMIO_REGION_SIZE, virtioTransport(ctx, { ...d, queueFds: [d.queueFd] }, desc, 'virtio-block'));
        break;
      }
      case 'virtio-net': {
        const params = { guestMac: d.guestMac ? Uint8Array.from(d.guestMac) : null, mtu: d.mtu };
        const desc = netDescription(params, new Uint8Array(d.config), new NetMetrics(d.metrics));
        mmio.insert(d.addr, VIRTIO_MMIO_REGION_SIZE, virtioTransport(ctx, d, desc, 'virtio-net'));
        break;
      }
      case 'virtio-vsock': {
        const desc = vsockDescription(d.guestCid, new VsockMetrics(d.metrics));
        mmio.insert(d.addr, VIRTIO_MMIO_REGION_SIZE, virtioTransport(ctx, d, desc, 'virtio-vsock'));
        break;
      }
      case 'virtio-rng':
        mmio.insert(d.addr, VIRTIO_MMIO_REGION_SIZE, virtioTransport(ctx, d, entropyDescription(), 'virtio-rng'));
        break;
      case 'virtio-balloon': {
        // The driver's writes of `actual` land in the shared config bytes here, on the vCPU thread.
        const desc = balloonDescription({ deflateOnOom: d.deflateOnOom, statsEnabled: d.statsEnabled, reporting: d.reporting, hinting: d.hinting }, new BalloonConfig(d.config));
        mmio.insert(d.addr, VIRTIO_MMIO_REGION_SIZE, virtioTransport(ctx, d, desc, 'virtio-balloon'));
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

/**
 * A virtio-mmio register window served here, on the vCPU thread, from the shared transport
 * state; the device worker only learns of DRIVER_OK (ctl doorbell) and of queue notifies
 * (ioeventfd; `onNotify` rings the same eventfd when a notify reaches the bus instead).
 */
function virtioTransport(
  ctx: BusContext, d: { addr: number; state: SharedArrayBuffer; ctlFd: number; queueFds: number[]; irqFd: number },
  desc: VirtioDeviceDescription, name: string,
): MmioTransport {
  const ctl = new EventFd(d.ctlFd);
  const queues = d.queueFds.map((fd) => new EventFd(fd));
  const irq = new EventFd(d.irqFd);
  let warned = 0;
  return new MmioTransport(d.state, desc, {
    onActivate: () => ctl.signal(),
    onNotify: (q) => queues[q]?.signal(),
    interrupt: () => irq.signal(),
    onReset: () => false,
    // Guest-triggered: log the first few only.
    warn: (m) => { if (warned++ < 10) ctx.sink.log('warn', `${name} at 0x${d.addr.toString(16)}: ${m}`); },
  }, ctx.mem);
}
