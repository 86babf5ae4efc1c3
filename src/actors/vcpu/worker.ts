/**
 * The vCPU worker: one worker_thread per vCPU running the KVM_RUN loop.
 *
 * Hot path: every exit that reaches userspace is handled here, on this thread, against device
 * state in shared memory (buses built from the DeviceManifest): no postMessage per exit.
 * Control arrives through the control array + kick (protocol.ts, src/kvm/kick.ts).
 * The vCPU's registers were set by the main thread before this worker started (fds are
 * process-wide), so this file only runs it.
 */
import { parentPort } from 'node:worker_threads';
import { actorInit } from '../actor-init.js';
import { VcpuFd } from '../../kvm/vcpu-fd.js';
import { VmFd } from '../../kvm/kvm.js';
import { KVM_EXIT, KVM_EXIT_IO_OUT, KVM_SYSTEM_EVENT } from '../../kvm/constants.js';
import { installKickHandler, currentThreadId } from '../../kvm/kick.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import {
  VCPU_SLOT as S, VCPU_REQUEST, VCPU_STATE, VCPU_EXIT_KIND, VM_SLOT, TRIPLE_FAULT_DETAIL, TRIPLE_FAULT_LOG, exitCodeOf,
  type VcpuWorkerInit, type VcpuMessage, type VcpuExitKind,
} from './protocol.js';
import { buildBuses, type ExitSink } from './devices.js';
import { VcpuMetrics, monotonicUs } from './metrics.js';
import { toWire, type WireError } from '../../errors.js';

const init = actorInit<VcpuWorkerInit>();
const port = parentPort!;
const ctl = new Int32Array(init.control);
const vmCtl = new Int32Array(init.vmControl);
const post = (m: VcpuMessage): void => port.postMessage(m);

installKickHandler();
const vcpu = VcpuFd.adopt(init.vcpuFd, init.vcpuId, init.runSize);
const vm = VmFd.adopt(init.vmFd, init.runSize);
const mem = GuestMemory.fromDescriptor(init.memory);
const metrics = new VcpuMetrics(init.metrics);

/** Set by a device (i8042 reset) to end the run loop after the current exit. */
let pendingExit: VcpuExitKind | undefined;
const sink: ExitSink = {
  requestExit(kind) { pendingExit ??= kind; },
  log(level, message) { post({ kind: 'log', vcpuId: init.vcpuId, level, message }); },
};
const { pio, mmio } = buildBuses(init.devices, { vm, mem, sink });

/** Publishes the exit to main (VM-wide stop request first, so main learns it promptly). */
function finish(kind: VcpuExitKind, detail: string, error?: WireError): void {
  Atomics.store(ctl, S.EXIT_KIND, kind);
  Atomics.store(ctl, S.STATE, VCPU_STATE.EXITED);
  Atomics.notify(ctl, S.STATE);
  if (kind !== VCPU_EXIT_KIND.STOPPED) {
    Atomics.compareExchange(vmCtl, VM_SLOT.EXIT_CODE, -1, exitCodeOf(kind));
    Atomics.store(vmCtl, VM_SLOT.EXIT_VCPU, init.vcpuId);
    Atomics.add(vmCtl, VM_SLOT.STOP_SEQ, 1);
    Atomics.notify(vmCtl, VM_SLOT.STOP_SEQ);
  }
  post({ kind: 'exit', vcpuId: init.vcpuId, exitKind: kind, detail, ...(error ? { error } : {}) });
}

/**
 * Finishes the last port-I/O or MMIO exit inside KVM without running guest code: KVM applies an
 * IN's or MMIO read's data (and advances RIP) only on the next KVM_RUN, and keeps that pending
 * step where KVM_GET_* cannot see it (KVM API doc, KVM_EXIT_IO note). A paused vCPU must have
 * none, or a snapshot taken now would replay the instruction or lose its result. KVM_RUN with
 * immediate_exit completes the step and returns EINTR before guest entry.
 */
function completePendingExit(): void {
  vcpu.immediateExit = 1;
  vcpu.run();
  vcpu.immediateExit = 0;
}

/** Applies pending requests; returns false when the loop must end. Blocks while paused. */
function applyRequests(state: { seq: number }): boolean {
  for (;;) {
    const seq = Atomics.load(ctl, S.REQ_SEQ);
    if (seq === state.seq) return true;
    state.seq = seq;
    const req = Atomics.load(ctl, S.REQ);
    const ack = (st: number): void => {
      Atomics.store(ctl, S.STATE, st);
      Atomics.store(ctl, S.ACK_SEQ, seq);
      Atomics.notify(ctl, S.ACK_SEQ);
    };
    if (req === VCPU_REQUEST.STOP) {
      ack(VCPU_STATE.EXITED);
      return false;
    }
    if (req === VCPU_REQUEST.PAUSE) {
      completePendingExit();
      ack(VCPU_STATE.PAUSED);
      // Sleep until the next request; kicks that land here are absorbed by the handler.
      Atomics.wait(ctl, S.REQ_SEQ, seq);
      continue;
    }
    ack(VCPU_STATE.RUNNING);
  }
}

/**
 * Handles one KVM_EXIT_IO (possibly a string IO of `count` elements): counted, and, while a
 * metrics sink reads them (VCPU_SLOT.TIME_EXITS), timed from the first bus access to the last,
 * as Firecracker's `run_arch_emulation` records `exit_io_*_agg` around its bus call. This runs
 * once per console byte, so it allocates nothing for a single-element exit.
 */
function handleIo(): void {
  const data = vcpu.ioData();
  const portNo = vcpu.ioPort;
  const out = vcpu.ioDirection === KVM_EXIT_IO_OUT;
  const t0 = ctl[S.TIME_EXITS] === 0 ? -1 : monotonicUs();
  const size = vcpu.ioSize;
  if (data.length === size) {
    if (out) pio.write(portNo, data);
    else pio.read(portNo, data);
  } else {
    for (let off = 0; off < data.length; off += size) {
      const el = data.subarray(off, off + size);
      if (out) pio.write(portNo, el);
      else pio.read(portNo, el);
    }
  }
  if (t0 >= 0) metrics.recordLatency(out ? 'exit_io_out_agg' : 'exit_io_in_agg', monotonicUs() - t0);
  metrics.inc(out ? 'exit_io_out' : 'exit_io_in');
}

function handleMmio(): void {
  const len = vcpu.mmioLen;
  // The kernel never reports more than 8 bytes; clamp anyway (kvm_run is shared with KVM).
  const data = vcpu.mmioData().subarray(0, Math.min(len, 8));
  const addr = Number(vcpu.mmioPhysAddr);
  const t0 = ctl[S.TIME_EXITS] === 0 ? -1 : monotonicUs();
  if (vcpu.mmioIsWrite) {
    mmio.write(addr, data);
    if (t0 >= 0) metrics.recordLatency('exit_mmio_write_agg', monotonicUs() - t0);
    metrics.inc('exit_mmio_write');
  } else {
    mmio.read(addr, data);
    if (t0 >= 0) metrics.recordLatency('exit_mmio_read_agg', monotonicUs() - t0);
    metrics.inc('exit_mmio_read');
  }
}

/**
 * An exit that ends this vCPU with an error: counts `vcpu.failures` and logs Firecracker's line
 * for it (vstate/vcpu.rs `handle_kvm_exit`) before the exit is published.
 */
function fail(kind: VcpuExitKind, detail: string, logLine: string, error?: WireError): void {
  metrics.inc('failures');
  sink.log('error', logLine);
  finish(kind, detail, error);
}

function runLoop(): void {
  const state = { seq: 0 };
  // Wait for the first request (RUN or STOP) before entering the guest.
  Atomics.wait(ctl, S.REQ_SEQ, 0);
  for (;;) {
    // Kick protocol (kick.ts): clear immediate_exit, full fence, then read requests.
    vcpu.immediateExit = 0;
    Atomics.add(ctl, S.FENCE, 1);
    if (!applyRequests(state)) return finish(VCPU_EXIT_KIND.STOPPED, 'stopped by the host');
    const reason = vcpu.run();
    switch (reason) {
      case KVM_EXIT.KVM_EXIT_IO: handleIo(); break;
      case KVM_EXIT.KVM_EXIT_MMIO: handleMmio(); break;
      case KVM_EXIT.KVM_EXIT_INTR: ctl[S.EXIT_INTR]!++; break;
      case KVM_EXIT.KVM_EXIT_HLT:
        return finish(VCPU_EXIT_KIND.HLT, 'KVM_EXIT_HLT');
      case KVM_EXIT.KVM_EXIT_SHUTDOWN:
        // Firecracker has no case for it: it is an "unexpected exit reason" there.
        return fail(VCPU_EXIT_KIND.TRIPLE_FAULT, TRIPLE_FAULT_DETAIL, TRIPLE_FAULT_LOG);
      case KVM_EXIT.KVM_EXIT_FAIL_ENTRY: {
        const why = vcpu.failEntryReason;
        return fail(VCPU_EXIT_KIND.FAIL_ENTRY, `KVM_EXIT_FAIL_ENTRY, hardware_entry_failure_reason 0x${why.toString(16)}`, `Received KVM_EXIT_FAIL_ENTRY signal: ${why} on cpu ${init.vcpuId}`);
      }
      case KVM_EXIT.KVM_EXIT_INTERNAL_ERROR:
        return fail(VCPU_EXIT_KIND.INTERNAL_ERROR, `KVM_EXIT_INTERNAL_ERROR, suberror ${vcpu.internalSuberror}`, 'Received KVM_EXIT_INTERNAL_ERROR signal');
      case KVM_EXIT.KVM_EXIT_SYSTEM_EVENT: {
        const t = vcpu.systemEventType;
        if (t === KVM_SYSTEM_EVENT.KVM_SYSTEM_EVENT_RESET || t === KVM_SYSTEM_EVENT.KVM_SYSTEM_EVENT_SHUTDOWN) {
          sink.log('info', `Received KVM_SYSTEM_EVENT: type: ${t}`);
          return finish(VCPU_EXIT_KIND.RESET, `KVM_EXIT_SYSTEM_EVENT type ${t}`);
        }
        return fail(VCPU_EXIT_KIND.ERROR, `KVM_EXIT_SYSTEM_EVENT type ${t}`, `Received KVM_SYSTEM_EVENT signal type: ${t}`);
      }
      default:
        ctl[S.EXIT_OTHER]!++;
        return fail(VCPU_EXIT_KIND.ERROR, `unexpected KVM exit reason ${reason}`, `Unexpected exit reason on vcpu run: ${reason}`);
    }
    if (pendingExit !== undefined) return finish(pendingExit, 'guest requested reset (i8042 0xFE)');
  }
}

post({ kind: 'ready', vcpuId: init.vcpuId, thread: currentThreadId() });
try {
  runLoop();
} catch (e) {
  fail(VCPU_EXIT_KIND.ERROR, `vCPU ${init.vcpuId} failed: ${(e as Error).stack ?? e}`, `Failure during vcpu run: ${(e as Error).message ?? e}`, toWire(e));
}
