/**
 * A built microVM at run time: the KVM objects, guest memory, vCPU actors and the main
 * thread's side of the devices, plus the run-state machine the API reports:
 *
 *   Not started ──start()──▶ Running ──pause()──▶ Paused ──resume()──▶ Running
 *                               │                    │
 *                               └──── guest reset / triple fault / stop() ──▶ Exited
 *
 * Exit codes follow Firecracker (facts §0): guest reset (i8042 0xFE) → 0; a vCPU error
 * (triple fault, FAIL_ENTRY, INTERNAL_ERROR, unknown exit) → 1, with an error log line.
 * The main thread never waits on a vCPU synchronously: requests are acknowledged through
 * shared memory and awaited with Atomics.waitAsync.
 */
import type { Kvm, VmFd } from '../kvm/kvm.js';
import type { VcpuFd } from '../kvm/vcpu-fd.js';
import type { HostGuestMemory } from '../memory/host-memory.js';
import type { VcpuHandle, VcpuExit } from '../actors/vcpu/handle.js';
import { VM_SLOT, VCPU_EXIT_KIND, exitCodeOf } from '../actors/vcpu/protocol.js';
import type { BlockHandle } from '../actors/virtio/block-handle.js';
import { openSync, closeSync } from 'node:fs';
import { backingFileSize } from '../devices/virtio/block/file-backend.js';
import type { Metrics } from '../metrics/metrics.js';
import type { TokenBucketConfig } from './config.js';

export type VmState = 'Not started' | 'Running' | 'Paused' | 'Exited';

/** How the microVM ended. */
export interface VmExit {
  /** Process exit code Firecracker would use. */
  code: number;
  /** Human-readable cause (the first vCPU exit that stopped the VM, or "stopped"). */
  reason: string;
}

/** Main-thread device endpoints the Vmm drives (serial pump, keyboard, ...). */
export interface HostDevices {
  sendCtrlAltDel(): boolean;
  /** Stops host-side pumps (stdin, serial output) and flushes pending output. */
  close(): Promise<void>;
}

export interface VmmParts {
  kvm: Kvm;
  vm: VmFd;
  mem: HostGuestMemory;
  vcpus: VcpuFd[];
  handles: VcpuHandle[];
  vmControl: Int32Array;
  host: HostDevices;
  log: (level: 'info' | 'warn' | 'error', msg: string) => void;
  /** virtio-block device actors, in drive order. */
  blocks: BlockHandle[];
  /** Registry the devices report into (`block_<drive_id>`); none in unit tests of the VMM. */
  metrics?: Metrics;
}

export class Vmm {
  readonly mem: HostGuestMemory;
  readonly handles: readonly VcpuHandle[];
  /** Resolves once, when the VM has stopped and every resource is released. */
  readonly exit: Promise<VmExit>;
  private _state: VmState = 'Not started';
  private readonly parts: VmmParts;
  private resolveExit!: (e: VmExit) => void;
  private stopping: Promise<void> | undefined;
  /** Unregisters the block metrics sources (see teardown). */
  private readonly metricsSources: (() => void)[];

  constructor(parts: VmmParts) {
    this.parts = parts;
    this.mem = parts.mem;
    this.handles = parts.handles;
    // Each drive's worker counts into shared memory; the flusher reads it on main through the
    // handle. The buffer outlives PATCH /drives backing-file swaps, so the counters do too.
    this.metricsSources = parts.metrics
      ? parts.blocks.map((b) => parts.metrics!.addDeviceSource('block', b.driveId, () => b.metricsSnapshot()))
      : [];
    this.exit = new Promise((r) => { this.resolveExit = r; });
    void this.watch();
  }

  get state(): VmState {
    return this._state;
  }

  /** Lets every vCPU run (InstanceStart). */
  async start(): Promise<void> {
    if (this._state !== 'Not started') throw new Error(`cannot start a VM in state ${this._state}`);
    await Promise.all(this.handles.map((h) => h.run()));
    if (this._state === 'Not started') this._state = 'Running';
  }

  /** Pauses every vCPU (PATCH /vm Paused); tells the guest through KVM_KVMCLOCK_CTRL. */
  async pause(): Promise<void> {
    if (this._state === 'Paused') return;
    if (this._state !== 'Running') throw new Error(`cannot pause a VM in state ${this._state}`);
    await Promise.all(this.handles.map((h) => h.pause()));
    for (const v of this.parts.vcpus) {
      try {
        v.kvmclockCtrl();
      } catch {
        // Not fatal (Firecracker counts vcpu.kvmclock_ctrl_fails); EINVAL when the guest has no kvmclock.
      }
    }
    this._state = 'Paused';
  }

  /** Resumes every vCPU (PATCH /vm Resumed). */
  async resume(): Promise<void> {
    if (this._state === 'Running') return;
    if (this._state !== 'Paused') throw new Error(`cannot resume a VM in state ${this._state}`);
    await Promise.all(this.handles.map((h) => h.run()));
    this._state = 'Running';
  }

  /** Injects Ctrl+Alt+Del through the i8042 (PUT /actions SendCtrlAltDel). */
  sendCtrlAltDel(): boolean {
    return this.parts.host.sendCtrlAltDel();
  }

  /**
   * PATCH /drives/{id} after boot: a new backing file (reopened with the drive's mode, new
   * capacity, config-change interrupt) and/or new rate limiter buckets.
   */
  async updateDrive(driveId: string, update: { path_on_host?: string; readOnly: boolean; rate_limiter?: { bandwidth?: TokenBucketConfig | null; ops?: TokenBucketConfig | null } | null }): Promise<void> {
    const b = this.parts.blocks.find((x) => x.driveId === driveId);
    if (!b) throw new Error(`drive ${driveId} does not exist`);
    if (update.path_on_host !== undefined) {
      const fd = openSync(update.path_on_host, update.readOnly ? 'r' : 'r+');
      try {
        await b.updateBackingFile(fd, backingFileSize(fd));
      } catch (e) {
        closeSync(fd);
        throw e;
      }
    }
    if (update.rate_limiter) await b.updateRateLimiter({ bandwidth: update.rate_limiter.bandwidth ?? null, ops: update.rate_limiter.ops ?? null });
  }

  /** Stops the VM from the host side; resolves with the exit. */
  async stop(): Promise<VmExit> {
    Atomics.compareExchange(this.parts.vmControl, VM_SLOT.EXIT_CODE, -1, 0);
    Atomics.add(this.parts.vmControl, VM_SLOT.STOP_SEQ, 1);
    Atomics.notify(this.parts.vmControl, VM_SLOT.STOP_SEQ);
    return this.exit;
  }

  /** Waits for a VM-wide stop request (from a vCPU or stop()), then tears everything down. */
  private async watch(): Promise<void> {
    const ctl = this.parts.vmControl;
    const unexpected = Promise.race(this.handles.map((h) => h.exited));
    for (;;) {
      const seen = Atomics.load(ctl, VM_SLOT.STOP_SEQ);
      if (seen !== 0) break;
      const w = Atomics.waitAsync(ctl, VM_SLOT.STOP_SEQ, 0);
      if (!w.async) continue;
      const winner = await Promise.race([w.value.then(() => 'stop' as const), unexpected.then(() => 'worker' as const)]);
      if (winner === 'worker') {
        // A worker ended without a stop request (it crashed): stop the VM with code 1.
        Atomics.compareExchange(ctl, VM_SLOT.EXIT_CODE, -1, 1);
        break;
      }
    }
    this.stopping ??= this.teardown();
    await this.stopping;
  }

  private async teardown(): Promise<void> {
    const ctl = this.parts.vmControl;
    const exits: VcpuExit[] = await Promise.all(this.handles.map((h) => h.stop().catch((e: Error) => ({
      vcpuId: h.id, exitKind: VCPU_EXIT_KIND.ERROR, detail: e.message,
    }))));
    this._state = 'Exited';
    await Promise.all(this.parts.blocks.map((b) => b.stop().catch(() => undefined)));
    // After the workers stopped, so the last pull sees everything they counted; the groups
    // stay in the metrics file (Firecracker never drops a drive's entry).
    this.metricsSources.forEach((off) => off());
    await this.parts.host.close();
    const first = exits.find((e) => e.exitKind !== VCPU_EXIT_KIND.STOPPED);
    let code = Atomics.load(ctl, VM_SLOT.EXIT_CODE);
    if (code < 0) code = first ? exitCodeOf(first.exitKind) : 0;
    const reason = first ? `vCPU ${first.vcpuId}: ${first.detail}` : 'stopped by the host';
    if (code !== 0) this.parts.log('error', `Vmm is stopping: ${reason}`);
    else this.parts.log('info', `Vmm is stopping: ${reason}`);
    for (const v of this.parts.vcpus) v.close();
    this.parts.vm.close();
    this.parts.kvm.close();
    this.resolveExit({ code, reason });
  }
}
