/**
 * The real `VmFactory`: builds KVM microVMs (src/vmm/builder.ts) and hands the controller the
 * `Vmm` itself, so every later action goes controller → Vmm → actor handle with nothing in
 * between (docs/design.md "API flow").
 *
 * The builder's module graph (actors, devices, kvm, koffi) is most of Kindling's module
 * loading, and the API socket must accept as soon as possible after process start (Firecracker's
 * start-up), so it is imported lazily: `warmUp()` starts the import once the socket listens and
 * InstanceStart awaits the same promise.
 */
import type { ActorKind } from '../actors/actor-pool.js';
import type { VmConfig } from '../config/resources.js';
import { KVM_SUPPORTED, type DeviceKind } from './features.js';
import type { VmHostOptions } from './builder.js';
import { actorDemand, type VmFactory } from './running-vm.js';
import type { Vmm } from './vmm.js';
import type { RestoreContext } from './restore.js';
import type { LoadSnapshotParams } from '../config/snapshot.js';

let builderModule: Promise<typeof import('./builder.js')> | undefined;
/** The builder module, loaded once. */
function loadBuilder(): Promise<typeof import('./builder.js')> {
  return (builderModule ??= import('./builder.js'));
}

let restoreModule: Promise<typeof import('./restore.js')> | undefined;
function loadRestore(): Promise<typeof import('./restore.js')> {
  return (restoreModule ??= import('./restore.js'));
}

let actorPool: Promise<typeof import('../actors/actor-pool.js')> | undefined;
function loadActorPool(): Promise<typeof import('../actors/actor-pool.js')> {
  return (actorPool ??= import('../actors/actor-pool.js'));
}

/**
 * Loads the builder and the actor pool ahead of InstanceStart (MicroVm.prewarm: the library's
 * counterpart of `warmUp`); resolves once both are loaded.
 */
export async function preloadBuilder(): Promise<void> {
  await Promise.all([loadActorPool(), loadBuilder()]);
}

/** Builds KVM microVMs attached to the given host I/O. */
export class KvmVmFactory implements VmFactory {
  private tapModule: typeof import('../kvm/tap.js') | undefined;

  constructor(private readonly host: VmHostOptions) {}

  async prepare(): Promise<void> {
    this.tapModule ??= await import('../kvm/tap.js');
  }

  /**
   * PUT /network-interfaces: the TAP must exist and be attachable now, as Firecracker opens it
   * at PUT time (TapError texts). Kindling attaches again at InstanceStart, where the device
   * worker takes the fd; between the two the TAP is not held.
   */
  openTap(hostDevName: string): void {
    if (!this.tapModule) throw new Error('internal: the TAP layer was not loaded before a TAP check (VmFactory.prepare)');
    this.tapModule.Tap.open(hostDevName).close();
  }

  supports(kind: DeviceKind): boolean {
    return KVM_SUPPORTED.has(kind);
  }

  /** Builds the VM, then lets its vCPUs run; a failure leaves nothing behind. */
  async boot(config: VmConfig): Promise<Vmm> {
    const t0 = performance.now();
    const at = (): string => `${Math.round(performance.now() - t0)} ms`;
    // Workers the API's pre-boot requests did not already start (the library, --config-file)
    // load on their own threads while the builder maps memory, loads the kernel and writes
    // the boot tables on this one.
    (await loadActorPool()).topUpAll(actorDemand(config.machine.vcpu_count, config));
    const { buildMicroVm } = await loadBuilder();
    const loaded = at();
    const vmm = await buildMicroVm(config, this.host);
    const built = at();
    try {
      await vmm.start();
    } catch (e) {
      await vmm.stop();
      throw e;
    }
    this.host.log('info', `instance start (cumulative): modules loaded ${loaded}, microVM built ${built}, vCPUs running ${at()}`);
    return vmm;
  }

  /** PUT /snapshot/load: a paused VM from a snapshot (src/vmm/restore.ts). */
  async restore(params: LoadSnapshotParams, ctx: RestoreContext): Promise<{ vm: Vmm; config: VmConfig }> {
    const { restoreMicroVm } = await loadRestore();
    return restoreMicroVm(params, this.host, ctx);
  }

  /**
   * Loads the builder after the current turn (so the listen log line and first accept come
   * first) and starts `vcpus` vCPU actors ahead: Firecracker's default vcpu_count is 1, and a
   * worker's start is most of InstanceStart's cost (src/actors/actor-pool.ts). A failure here
   * resurfaces, with its message, when InstanceStart awaits the same import.
   */
  warmUp(vcpus = 1): void {
    setImmediate(() => {
      // The worker loads on its own thread while main imports the builder: on a client that
      // sends InstanceStart right away, both are ready together instead of one after the other.
      this.expectActors({ vcpu: vcpus, block: 0, net: 0, vsock: 0, entropy: 0, balloon: 0, mem: 0, pmem: 0, fs: 0 });
      // Then the restore path: a VMM started ahead of a PUT /snapshot/load has it loaded too.
      void loadBuilder().then(loadRestore).catch(() => undefined);
    });
  }

  /**
   * Tops the pre-started workers up to what the configuration asks for: a drive PUT before
   * InstanceStart starts a block actor's worker while the client sends its next requests.
   * Workers already handed to a VM are not counted, so this is only called before boot.
   */
  expectActors(demand: Readonly<Record<ActorKind, number>>): void {
    void loadActorPool().then((p) => p.topUpAll(demand)).catch(() => undefined);
  }
}
