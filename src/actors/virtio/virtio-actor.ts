/**
 * The main thread's side of any virtio device actor: what every device's handle (block, net,
 * and those to come) needs alike. It creates the doorbells — a control eventfd, one eventfd
 * per queue and the interrupt eventfd — registers each queue's eventfd with KVM as an
 * ioeventfd on the device's QueueNotify register (datamatch = the queue index, so the guest's
 * notify never exits to userspace) and the interrupt eventfd as an irqfd on the device's GSI,
 * starts the worker, waits for its `ready`, and carries control calls (control-channel.ts).
 *
 * Invariant: the doorbells are closed only after the worker has ended, and the control client
 * is closed before them, so no later call can ring a reused fd number.
 */
import type { Worker } from 'node:worker_threads';
import { startActor, type ActorKind } from '../actor-pool.js';
import { connectControl, type ControlClient } from '../control-channel.js';
import type { KindlingError } from '../../errors.js';
import type { VmFd } from '../../kvm/kvm.js';
import type { GuestMemoryDescriptor } from '../../memory/guest-memory.js';
import { EventFd } from '../../kvm/eventfd.js';
import { VIRTIO_MMIO_QUEUE_NOTIFY } from '../../devices/virtio/constants.js';
import { MmioState } from '../../devices/virtio/mmio-state.js';
import { NOTIFICATION_OFFSET, NOTIFY_OFF_MULTIPLIER, VirtioPciState } from '../../devices/virtio/pci-state.js';
import type { QueueIndices } from '../../devices/virtio/queue.js';

/** QueueNotify is a 4-byte register. */
const QUEUE_NOTIFY_WIDTH = 4;

/** Where a virtio-pci device sits (planned by src/vmm/virtio-devices.ts). */
export interface VirtioPciPlacement {
  /** Device number on bus 0 (1..31; 0 is the host bridge). */
  slot: number;
  /** Guest address of BAR 0. */
  barAddr: number;
  /** MSI GSI of vector 0; vector v uses gsiBase + v. */
  gsiBase: number;
}

/** What a virtio-pci device's worker and vCPU transports share besides the virtio register file. */
export interface VirtioPciDoorbells extends VirtioPciPlacement {
  /** VirtioPciState (config space, vectors, MSI-X table and PBA). */
  state: SharedArrayBuffer;
  /** The virtio device id (the PCI device id is 0x1040 + it). */
  deviceId: number;
  /** One irqfd-backed eventfd per MSI-X vector (queues + 1). */
  vectorFds: number[];
}

/** The doorbell fds a worker and the vCPU transports are given. */
export interface VirtioDoorbells {
  ctlFd: number;
  irqFd: number;
  /** One per queue, in queue order. */
  queueFds: number[];
  /** Set for a virtio-pci device (--enable-pci); null on virtio-mmio. */
  pci: VirtioPciDoorbells | null;
}

/** What a snapshot keeps of one virtio device actor (docs/design.md "Snapshots"). */
export interface VirtioDeviceSnapshot {
  /** The transport's register file (MmioState.save). */
  transport: number[];
  /** The device side of each queue when the device was active, else null. */
  queues: QueueIndices[] | null;
  /** Devices whose config space changes at run time (balloon: num_pages, actual): its bytes. */
  config?: number[];
  /** Balloon: the head of the statistics buffer the device held (Firecracker `stats_desc_index`). */
  statsHead?: number | null;
}

/** What a device worker is spawned with when it comes back from a snapshot. */
export interface VirtioRestore {
  queues: QueueIndices[] | null;
}

/** workerData every one-queue device worker has (block; entropy, pmem and virtio-mem, which run single-queue-loop.ts). */
export interface SingleQueueWorkerInit {
  /** Transport state (MmioState). */
  state: SharedArrayBuffer;
  memory: GuestMemoryDescriptor;
  ctlFd: number;
  /** The request queue's doorbell. */
  queueFd: number;
  irqFd: number;
  /** virtio-pci (--enable-pci): the PCI state and MSI-X vector doorbells; null on virtio-mmio. */
  pci: VirtioPciDoorbells | null;
  /** Set when the device comes back from a snapshot (its transport state is already restored). */
  restore: VirtioRestore | null;
}

/** Control calls every device worker serves for snapshots (WorkerLifecycle.quiesce/release). */
export interface SnapshotControl {
  /** Stops touching guest memory and host I/O; the device's queue indices (null while inactive). */
  quiesce(): QueueIndices[] | null;
  /** Serves the device again. */
  release(): void;
}

/** Messages every device worker may post besides control replies. */
export type VirtioEventMessage = { kind: 'ready' } | { kind: 'log'; level: 'info' | 'warn' | 'error'; message: string };

export interface VirtioActorSpec<I> {
  vm: VmFd;
  kind: ActorKind;
  /** Thread name, as Firecracker names its threads (`fc_blk rootfs`). */
  thread: string;
  /** How errors name the device (`drive rootfs`). */
  label: string;
  /** MMIO window and interrupt line assigned to the device (virtio-mmio). */
  addr: number;
  gsi: number;
  /** With --enable-pci: the device's PCI placement and virtio device id, instead of addr/gsi. */
  pci?: (VirtioPciPlacement & { deviceId: number }) | null;
  queues: number;
  /** The worker's init data, given its doorbells. */
  init: (doorbells: VirtioDoorbells) => I;
  onLog?: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

export class VirtioActor<C> {
  readonly doorbells: VirtioDoorbells;
  private readonly control: ControlClient<C>;
  private readonly fds: EventFd[];
  private readonly queueEvts: EventFd[];
  private readonly ended: Promise<void>;
  private stopped: Promise<void> | undefined;

  private constructor(worker: Worker, label: string, ctl: EventFd, irq: EventFd, queues: EventFd[], vectors: EventFd[], doorbells: VirtioDoorbells, onLog: VirtioActorSpec<unknown>['onLog']) {
    this.control = connectControl<C>(worker, ctl, label);
    this.fds = [ctl, irq, ...queues, ...vectors];
    this.queueEvts = queues;
    this.doorbells = doorbells;
    worker.on('message', (m: VirtioEventMessage) => {
      if (m.kind === 'log') onLog?.(m.level, m.message);
    });
    this.ended = new Promise((r) => worker.once('exit', () => r()));
  }

  /** Sets up the doorbells with KVM and starts the worker; resolves when it is ready. */
  static async spawn<C, I>(spec: VirtioActorSpec<I>): Promise<VirtioActor<C>> {
    const ctl = new EventFd();
    const irq = new EventFd();
    const queues = Array.from({ length: spec.queues }, () => new EventFd());
    const pci = spec.pci ?? null;
    const vectors = pci ? Array.from({ length: spec.queues + 1 }, () => new EventFd()) : [];
    if (pci) {
      // virtio-pci (Firecracker VirtioPciDevice::register_notification_ioevent): queue i's
      // notify address is its own dword in the notification area, any write width (len 0).
      queues.forEach((q, i) => spec.vm.registerIoeventfd(q.fd, BigInt(pci.barAddr + NOTIFICATION_OFFSET + NOTIFY_OFF_MULTIPLIER * i), 0));
      // One irqfd per MSI-X vector on its own GSI; the vCPU threads route each GSI to the
      // vector's message (KVM_SET_GSI_ROUTING) while the driver has it unmasked.
      vectors.forEach((v, i) => spec.vm.registerIrqfd(v.fd, pci.gsiBase + i));
    } else {
      queues.forEach((q, i) => spec.vm.registerIoeventfd(q.fd, BigInt(spec.addr + VIRTIO_MMIO_QUEUE_NOTIFY), QUEUE_NOTIFY_WIDTH, { datamatch: BigInt(i) }));
      spec.vm.registerIrqfd(irq.fd, spec.gsi);
    }
    const doorbells: VirtioDoorbells = {
      ctlFd: ctl.fd, irqFd: irq.fd, queueFds: queues.map((q) => q.fd),
      pci: pci ? {
        ...pci, vectorFds: vectors.map((v) => v.fd),
        state: VirtioPciState.create({ deviceId: pci.deviceId, numQueues: spec.queues, numVectors: spec.queues + 1, barAddr: pci.barAddr }),
      } : null,
    };
    const worker = startActor(spec.kind, spec.init(doorbells), spec.thread);
    const actor = new VirtioActor<C>(worker, spec.label, ctl, irq, queues, vectors, doorbells, spec.onLog);
    await new Promise<void>((resolve, reject) => {
      const onMsg = (m: VirtioEventMessage): void => { if (m.kind === 'ready') { worker.off('message', onMsg); resolve(); } };
      worker.on('message', onMsg);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`${spec.label}: device worker exited (${code}) before ready`)));
    });
    return actor;
  }

  /** The worker's control interface (control-channel.ts). */
  get remote(): ControlClient<C>['remote'] {
    return this.control.remote;
  }

  /**
   * Makes the worker look at its queues as if the guest had notified them. On resume
   * Firecracker kicks every device before the vCPUs run again (src/vmm/src/lib.rs `resume_vm`
   * → `kick_devices`): requests a driver queued meanwhile get served. An inactive device
   * ignores it.
   */
  kick(): void {
    for (const q of this.queueEvts) q.signal();
  }

  /**
   * Stops the worker through `stop` (its control method that replies, then ends the loop) and
   * closes the doorbells; later calls return the same promise.
   */
  stop(stopCall: (remote: ControlClient<C>['remote']) => Promise<void>): Promise<void> {
    this.stopped ??= (async () => {
      // A worker that already ended (it failed) has nothing left to stop: ACTOR_EXITED is fine.
      const reply = stopCall(this.control.remote).then(
        () => undefined,
        (e: KindlingError) => (e.code === 'ACTOR_EXITED' ? undefined : e),
      );
      await this.ended;
      this.control.close(); // before the doorbells close: no later call may ring a reused fd
      this.fds.forEach((f) => f.close());
      const failed = await reply;
      if (failed) throw failed;
    })();
    return this.stopped;
  }
}

/**
 * What every device handle (block, net, vsock, entropy) offers main the same way: its vCPU
 * manifest, a kick (resume), its metrics read from the worker's shared buffer, and stop. Each
 * subclass adds its spawn and its device's control calls.
 */
export abstract class VirtioDeviceHandle<C extends { stop(): void } & SnapshotControl, Manifest extends { state: SharedArrayBuffer }, Snapshot> {
  protected constructor(
    protected readonly actor: VirtioActor<C>,
    /** What a vCPU worker needs to serve the device's registers. */
    readonly manifest: Manifest,
    private readonly metrics: { snapshot(): Snapshot },
  ) {}

  /**
   * Snapshot: quiesces the worker and returns the device's state; the worker stays quiet
   * until `release()`, so guest memory saved meanwhile matches the returned indices.
   */
  async saveState(): Promise<VirtioDeviceSnapshot> {
    const queues = await this.actor.remote.quiesce();
    return { transport: new MmioState(this.manifest.state).save(), queues };
  }

  /** After a snapshot: the worker serves its device again. */
  release(): Promise<void> {
    return this.actor.remote.release();
  }

  /** Makes the worker look at its queues (resume: VirtioActor.kick). */
  kick(): void {
    this.actor.kick();
  }

  /** The device's metrics (absolute counters). */
  metricsSnapshot(): Snapshot {
    return this.metrics.snapshot();
  }

  /** Stops the worker (it releases its host resources) and closes the doorbells; later calls return the same promise. */
  stop(): Promise<void> {
    return this.actor.stop((r) => r.stop());
  }
}
