/**
 * The vCPU actor's protocol: what the main thread and a vCPU worker share.
 *
 * Control is a small Int32Array over a SharedArrayBuffer (named slots below), not messages:
 * a worker inside KVM_RUN cannot receive messages, and a paused worker blocks in Atomics.wait.
 * Requests:  main writes REQ, bumps REQ_SEQ, notifies, and kicks (src/kvm/kick.ts).
 * Replies:   the worker applies the request, writes STATE, sets ACK_SEQ = REQ_SEQ, notifies.
 * Messages (postMessage) carry only rare events: `ready` once, `exit` once, `log` lines.
 * An exception crosses as a WireError (src/errors.ts), so main keeps its code.
 *
 * Run states (firecracker vstate/vcpu.rs has the same shape):
 *
 *   Created ──RUN──▶ Running ──PAUSE──▶ Paused ──RUN──▶ Running
 *                       │                  │
 *                       └──STOP / guest exit / error──▶ Exited (final)
 */
import type { GuestMemoryDescriptor } from '../../memory/guest-memory.js';
import type { VirtioBlockManifest } from '../virtio/protocol.js';
import type { VirtioNetManifest } from '../virtio/net-protocol.js';
import type { VirtioVsockManifest } from '../virtio/vsock-protocol.js';
import type { VirtioEntropyManifest } from '../virtio/entropy-protocol.js';
import type { VirtioFsManifest } from '../virtio/fs-protocol.js';
import type { VirtioBalloonManifest } from '../virtio/balloon-protocol.js';
import type { VirtioMemManifest } from '../virtio/mem-protocol.js';
import type { VirtioPmemManifest } from '../virtio/pmem-protocol.js';
import type { WireError } from '../../errors.js';

/** Slots of the per-vCPU control array. */
export const VCPU_SLOT = {
  /** The requested state (VCPU_REQUEST). */
  REQ: 0,
  /** Bumped by main with every request. */
  REQ_SEQ: 1,
  /** Set by the worker to the REQ_SEQ it has applied. */
  ACK_SEQ: 2,
  /** The worker's current VCPU_STATE. */
  STATE: 3,
  /** Why the worker exited (VCPU_EXIT_KIND), valid in state EXITED. */
  EXIT_KIND: 4,
  /** Scratch slot for the full fence of the kick protocol (an Atomics RMW). */
  FENCE: 5,
  /**
   * Exits that ended the run loop with an unexpected reason (not a Firecracker metric; the
   * `vcpu` metric group lives in the worker's metrics buffer, metrics.ts).
   */
  EXIT_OTHER: 6,
  /**
   * KVM_RUN returns seen as KVM_EXIT_INTR: EINTR from the kick's signal or immediate_exit
   * (src/kvm/kick.ts), and an AP's EAGAIN (vcpu-fd.ts run()). Not a Firecracker metric; it
   * lets a test see that a kick reached a vCPU.
   */
  EXIT_INTR: 7,
  /**
   * Non-zero while a metrics sink can read the `exit_*_agg` latencies: only then does the
   * worker read the clock around each exit's bus access (set by main, src/vmm/vm-metrics.ts).
   */
  TIME_EXITS: 8,
} as const;
export const VCPU_CONTROL_SLOTS = 16;

/** Requests main can make. */
export const VCPU_REQUEST = { RUN: 1, PAUSE: 2, STOP: 3 } as const;

/** Worker states. */
export const VCPU_STATE = { CREATED: 0, RUNNING: 1, PAUSED: 2, EXITED: 3 } as const;

/**
 * The exit detail of a guest triple fault (KVM_EXIT_SHUTDOWN). The KVM test tier matches it in
 * a failure's output to rerun the file once (test/harness/tier.ts).
 */
export const TRIPLE_FAULT_DETAIL = 'KVM_EXIT_SHUTDOWN (triple fault)';

/**
 * Firecracker's log line for the same exit (vstate/vcpu.rs, `VcpuExit::Shutdown`). It is logged
 * when the vCPU stops, before the VM's closing line that carries TRIPLE_FAULT_DETAIL; a test
 * file can finish failing in between, so the tier matches this one too.
 */
export const TRIPLE_FAULT_LOG = 'Unexpected exit reason on vcpu run: Shutdown';

/** Why a vCPU stopped. */
export const VCPU_EXIT_KIND = {
  NONE: 0,
  /** STOP request from the host. */
  STOPPED: 1,
  /** KVM_EXIT_HLT reached userspace (only without an in-kernel irqchip: tiny test guests). */
  HLT: 2,
  /** Guest reset through the i8042 (0xFE) or a KVM reset/shutdown system event: exit code 0. */
  RESET: 3,
  /** Triple fault (KVM_EXIT_SHUTDOWN): exit code 1. */
  TRIPLE_FAULT: 4,
  /** KVM_EXIT_FAIL_ENTRY: exit code 1. */
  FAIL_ENTRY: 5,
  /** KVM_EXIT_INTERNAL_ERROR: exit code 1. */
  INTERNAL_ERROR: 6,
  /** An unexpected exit reason or a host-side error: exit code 1. */
  ERROR: 7,
} as const;
export type VcpuExitKind = (typeof VCPU_EXIT_KIND)[keyof typeof VCPU_EXIT_KIND];

/** The VMM exit code for an exit kind (firecracker: reset → 0, vCPU errors → 1). */
export function exitCodeOf(kind: VcpuExitKind): number {
  return kind === VCPU_EXIT_KIND.STOPPED || kind === VCPU_EXIT_KIND.HLT || kind === VCPU_EXIT_KIND.RESET ? 0 : 1;
}

/** Slots of the VM-wide control array shared by every vCPU worker and main. */
export const VM_SLOT = {
  /** Bumped (and notified) when some vCPU wants the whole VM to stop. */
  STOP_SEQ: 0,
  /** The exit code that vCPU asked for (first writer wins; -1 = none yet). */
  EXIT_CODE: 1,
  /** Which vCPU asked. */
  EXIT_VCPU: 2,
} as const;
export const VM_CONTROL_SLOTS = 4;

/** A device a worker must put on its buses, with the shared state it needs. */
export type DeviceManifest =
  | { kind: 'debug-port'; port: number; ring: SharedArrayBuffer }
  | { kind: 'serial'; port: number; state: SharedArrayBuffer; gsi: number }
  | { kind: 'i8042'; port: number; state: SharedArrayBuffer; gsi: number }
  | { kind: 'boot-timer'; addr: number; startWallUs: number; startCpuUs: number }
  /**
   * --enable-pci: the PCI root (src/devices/pci/root.ts) — its shared state (host bridge,
   * CONFIG_ADDRESS), the VM's MSI route table, and where the ECAM and the 64-bit BAR window are.
   */
  | { kind: 'pci-root'; state: SharedArrayBuffer; routes: SharedArrayBuffer; msiGsiStart: number; ecamAddr: number; ecamSize: number; windowAddr: number; windowSize: number }
  | VirtioBlockManifest
  | VirtioNetManifest
  | VirtioVsockManifest
  | VirtioEntropyManifest
  | VirtioBalloonManifest
  | VirtioMemManifest
  | VirtioPmemManifest

  | VirtioFsManifest;

/** Everything a vCPU worker is started with (workerData). */
export interface VcpuWorkerInit {
  vmFd: number;
  vcpuFd: number;
  vcpuId: number;
  runSize: number;
  control: SharedArrayBuffer;
  vmControl: SharedArrayBuffer;
  /** This vCPU's `vcpu` metric group (metrics.ts), counted by the worker. */
  metrics: SharedArrayBuffer;
  memory: GuestMemoryDescriptor;
  devices: DeviceManifest[];
}

/** Messages a vCPU worker posts. */
export type VcpuMessage =
  | { kind: 'ready'; vcpuId: number; thread: bigint }
  /** `error`: the exception that ended the run loop (exit kind ERROR), with its code. */
  | { kind: 'exit'; vcpuId: number; exitKind: VcpuExitKind; detail: string; error?: WireError }
  | { kind: 'log'; vcpuId: number; level: 'info' | 'warn' | 'error'; message: string };
