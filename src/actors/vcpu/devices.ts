/**
 * Builds a vCPU worker's port-IO and MMIO buses from the DeviceManifest main sent it.
 * Each worker constructs its own device objects over the *shared* state buffers, so every
 * vCPU (and main) sees one device; the models serialize access themselves.
 */
import { Bus } from '../../devices/bus.js';
import { DebugPort } from '../../devices/debug-port.js';
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
      default:
        throw new Error(`device kind ${(d as { kind: string }).kind} is not available to vCPU workers yet`);
    }
  }
  void ctx;
  return { pio, mmio };
}
