/**
 * VcpuHandle: the main thread's side of one vCPU actor. It owns the worker, the control
 * array and the main thread's own VcpuFd (whose kvm_run mapping it uses to set
 * immediate_exit when kicking). Requests are made through the control array and answered
 * through ACK_SEQ, awaited with Atomics.waitAsync so the main thread never blocks.
 */
import type { Worker } from 'node:worker_threads';
import { startActor } from '../actor-pool.js';
import type { VcpuFd } from '../../kvm/vcpu-fd.js';
import type { VmFd } from '../../kvm/kvm.js';
import { signalThread } from '../../kvm/kick.js';
import type { GuestMemoryDescriptor } from '../../memory/guest-memory.js';
import {
  VCPU_SLOT as S, VCPU_CONTROL_SLOTS, VCPU_REQUEST, VCPU_STATE, VCPU_EXIT_KIND,
  type DeviceManifest, type VcpuMessage, type VcpuExitKind, type VcpuWorkerInit,
} from './protocol.js';
import { KindlingError, fromWire } from '../../errors.js';
import { VcpuMetrics } from './metrics.js';

/** Firecracker's name for a vCPU thread (vstate/vcpu.rs `start_threaded`), also its log lines' thread. */
export function vcpuThreadName(id: number): string {
  return `fc_vcpu ${id}`;
}

/** How the worker ended. */
export interface VcpuExit {
  vcpuId: number;
  exitKind: VcpuExitKind;
  detail: string;
  /** The error that ended the run loop, with its code (e.g. KVM_IOCTL_FAILED from KVM_RUN). */
  error?: KindlingError;
}

export interface VcpuSpawnOptions {
  vm: VmFd;
  vcpu: VcpuFd;
  memory: GuestMemoryDescriptor;
  vmControl: SharedArrayBuffer;
  devices: DeviceManifest[];
  onLog?: (m: Extract<VcpuMessage, { kind: 'log' }>) => void;
}

/** Waits until ctl[slot] !== value, without blocking the event loop. */
async function waitChange(ctl: Int32Array, slot: number, value: number, timeoutMs: number): Promise<boolean> {
  const r = Atomics.waitAsync(ctl, slot, value, timeoutMs);
  const outcome = r.async ? await r.value : r.value;
  return outcome !== 'timed-out';
}

/**
 * vCPU actors whose worker is alive. At process exit Node terminates worker threads and joins
 * them, but a thread inside KVM_RUN runs no JavaScript, so termination never reaches it and
 * the exit would hang forever (a guest spinning without exits, a test that failed before
 * stopping its VM). The exit hook asks each one to stop and kicks it out of KVM_RUN.
 */
const live = new Set<VcpuHandle>();
let exitHookInstalled = false;

export class VcpuHandle {
  readonly id: number;
  readonly worker: Worker;
  readonly control: Int32Array;
  /** This vCPU's `vcpu` metric group, counted by the worker (metrics.ts). */
  readonly metrics: VcpuMetrics;
  /** Resolves once when the worker has exited (for any reason). */
  readonly exited: Promise<VcpuExit>;
  private readonly vcpu: VcpuFd;
  private thread = 0n;

  private constructor(opts: VcpuSpawnOptions, worker: Worker, control: Int32Array, metrics: VcpuMetrics) {
    this.id = opts.vcpu.id;
    this.vcpu = opts.vcpu;
    this.worker = worker;
    this.control = control;
    this.metrics = metrics;
    this.exited = new Promise((resolve) => {
      let result: VcpuExit | undefined;
      worker.on('message', (m: VcpuMessage) => {
        if (m.kind === 'exit') result = { vcpuId: m.vcpuId, exitKind: m.exitKind, detail: m.detail, ...(m.error ? { error: fromWire(m.error) } : {}) };
        else if (m.kind === 'log') opts.onLog?.(m);
      });
      // A worker that dies without its own report (its failure line) gets one here, so the
      // log says why the VM stops.
      const died = (detail: string): VcpuExit => {
        opts.onLog?.({ kind: 'log', vcpuId: this.id, level: 'error', message: `vCPU ${this.id} thread died: ${detail}` });
        return { vcpuId: this.id, exitKind: VCPU_EXIT_KIND.ERROR, detail };
      };
      worker.on('error', (e) => { result ??= died(String(e.stack ?? e)); });
      worker.on('exit', () => resolve(result ?? died('worker ended without reporting')));
    });
  }

  /** Starts the worker and waits until it is ready (vCPU adopted, kick handler installed). */
  static async spawn(opts: VcpuSpawnOptions): Promise<VcpuHandle> {
    const control = new Int32Array(new SharedArrayBuffer(VCPU_CONTROL_SLOTS * 4));
    const metrics = new VcpuMetrics();
    const init: VcpuWorkerInit = {
      vmFd: opts.vm.fd, vcpuFd: opts.vcpu.fd, vcpuId: opts.vcpu.id, runSize: opts.vcpu.runSize,
      control: control.buffer as SharedArrayBuffer, vmControl: opts.vmControl, metrics: metrics.buffer, memory: opts.memory, devices: opts.devices,
    };
    const worker = startActor('vcpu', init, vcpuThreadName(opts.vcpu.id));
    const h = new VcpuHandle(opts, worker, control, metrics);
    live.add(h);
    void h.exited.then(() => live.delete(h));
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on('exit', () => { for (const v of live) v.abandon(); });
    }
    h.thread = await new Promise<bigint>((resolve, reject) => {
      const onMsg = (m: VcpuMessage): void => {
        if (m.kind === 'ready') { worker.off('message', onMsg); resolve(m.thread); }
      };
      worker.on('message', onMsg);
      worker.once('error', reject);
      void h.exited.then((x) => reject(new KindlingError('INTERNAL', `vCPU ${h.id} worker ended before ready: ${x.detail}`)));
    });
    return h;
  }

  /**
   * Asks the worker to time each exit's bus access for the `exit_*_agg` latencies (two clock
   * reads per exit), from its next exit on; metrics that nobody reads are not timed.
   */
  timeExits(): void {
    Atomics.store(this.control, S.TIME_EXITS, 1);
  }

  /** The worker's current state (VCPU_STATE). */
  get state(): number {
    return Atomics.load(this.control, S.STATE);
  }

  /**
   * Makes a request and resolves when the worker acknowledged it. `kick` gets a worker out
   * of KVM_RUN (pause/stop); RUN needs no kick (a paused worker sleeps in Atomics.wait).
   */
  private async request(req: number, kick: boolean, timeoutMs: number): Promise<void> {
    const seq = this.post(req);
    if (kick) this.kick();
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const ack = Atomics.load(this.control, S.ACK_SEQ);
      if (ack >= seq || this.state === VCPU_STATE.EXITED) return;
      const left = deadline - performance.now();
      if (left <= 0 || !(await waitChange(this.control, S.ACK_SEQ, ack, left))) {
        throw new KindlingError('VCPU_KICK_FAILED', `vCPU ${this.id} did not acknowledge request ${req} within ${timeoutMs} ms`);
      }
    }
  }

  /** Kick protocol steps 2–3 (kick.ts): immediate_exit through our mapping, then the signal. */
  kick(): void {
    if (this.state === VCPU_STATE.EXITED) return;
    this.vcpu.immediateExit = 1;
    signalThread(this.thread);
  }

  /**
   * Process exit: posts STOP and kicks, without waiting for an answer (nothing can be awaited
   * in an exit hook). immediate_exit stays set, so the worker cannot enter the guest again.
   */
  abandon(): void {
    if (this.state === VCPU_STATE.EXITED || this.thread === 0n) return;
    this.post(VCPU_REQUEST.STOP);
    this.kick();
  }

  /** Writes request `req` and bumps REQ_SEQ (protocol.ts: REQ first, then the sequence); returns the new sequence. */
  private post(req: number): number {
    const seq = Atomics.load(this.control, S.REQ_SEQ) + 1;
    Atomics.store(this.control, S.REQ, req);
    Atomics.store(this.control, S.REQ_SEQ, seq);
    Atomics.notify(this.control, S.REQ_SEQ);
    return seq;
  }

  /** Lets the vCPU run (first start or resume). */
  run(timeoutMs = 30_000): Promise<void> {
    return this.request(VCPU_REQUEST.RUN, false, timeoutMs);
  }

  /** Pauses the vCPU; resolves once it is out of KVM_RUN and parked. 30 s like Firecracker. */
  pause(timeoutMs = 30_000): Promise<void> {
    return this.request(VCPU_REQUEST.PAUSE, true, timeoutMs);
  }

  /** Stops the vCPU for good and waits for its worker to end. */
  async stop(timeoutMs = 30_000): Promise<VcpuExit> {
    if (this.state !== VCPU_STATE.EXITED) await this.request(VCPU_REQUEST.STOP, true, timeoutMs);
    return this.exited;
  }

  /** Exit counters (metrics vcpu.exit_io_in, ...; `intr` counts interrupted KVM_RUNs). */
  exitCounts(): { ioIn: number; ioOut: number; mmioRead: number; mmioWrite: number; other: number; intr: number } {
    const c = this.control;
    const m = this.metrics;
    return {
      ioIn: m.count('exit_io_in'), ioOut: m.count('exit_io_out'),
      mmioRead: m.count('exit_mmio_read'), mmioWrite: m.count('exit_mmio_write'),
      other: Atomics.load(c, S.EXIT_OTHER), intr: Atomics.load(c, S.EXIT_INTR),
    };
  }
}
