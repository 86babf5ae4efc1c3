/**
 * Free page hinting, the host-driven half (virtio 1.2 §5.5.6.7 "Free Page Hints"; Firecracker
 * src/vmm/src/devices/virtio/balloon/device.rs `start_hinting`, `stop_hinting`,
 * `process_free_page_hinting_queue`; firecracker-facts §4.8), pure: the device (device.ts)
 * owns the queue and the config space and calls this with them.
 *
 * - PATCH /balloon/hinting/start: a new command id (the last + 1, never STOP 0 or DONE 1) goes
 *   into the config's free_page_hint_cmd_id, with a config interrupt.
 * - The driver answers on the hinting queue: a device-readable 4-byte buffer is a command id
 *   (the run's id when it starts, STOP when it has hinted everything it could), every other
 *   buffer is a block of free guest pages. Blocks hinted for the current run are released
 *   like inflated pages; those of an old run, or after DONE, are left alone (the driver may
 *   already be reusing them).
 * - The guest holds hinted pages until the host says DONE: at the guest's STOP when
 *   `acknowledge_on_stop` (the default), else at PATCH /balloon/hinting/stop.
 */
import type { GuestMemory } from '../../../memory/guest-memory.js';
import type { DescriptorChain } from '../queue.js';
import type { BalloonConfig } from './config.js';
import type { BalloonMetrics } from './metrics.js';

/** Reserved command ids (Linux include/uapi/linux/virtio_balloon.h). */
export const VIRTIO_BALLOON_CMD_ID_STOP = 0;
export const VIRTIO_BALLOON_CMD_ID_DONE = 1;
/** Bytes of a command id buffer (le32). */
const CMD_ID_SIZE = 4;
const PAGE = 4096;

/** GET /balloon/hinting/status. */
export interface HintingStatusReply {
  host_cmd: number;
  guest_cmd: number | null;
}

export class FreePageHinting {
  private lastCmdId = VIRTIO_BALLOON_CMD_ID_DONE;
  private hostCmd = VIRTIO_BALLOON_CMD_ID_DONE;
  private guestCmd: number | null = null;
  private ackOnStop = true;

  /**
   * A restored device takes up the run its config space names (the state file keeps the config
   * bytes, not this object): a later start continues the numbering.
   */
  constructor(private readonly config: BalloonConfig, private readonly metrics: BalloonMetrics) {
    const id = config.hintCmdId;
    if (id > VIRTIO_BALLOON_CMD_ID_DONE) this.lastCmdId = this.hostCmd = id;
  }

  /** Starts a run: the next command id in the config space. The caller raises the config interrupt. */
  start(acknowledgeOnStop: boolean): void {
    this.lastCmdId = (this.lastCmdId + 1) >>> 0;
    if (this.lastCmdId <= VIRTIO_BALLOON_CMD_ID_DONE) this.lastCmdId = VIRTIO_BALLOON_CMD_ID_DONE + 1;
    this.ackOnStop = acknowledgeOnStop;
    this.setHostCmd(this.lastCmdId);
  }

  /** Tells the guest it may reuse the hinted pages (DONE). The caller raises the config interrupt. */
  stop(): void {
    this.setHostCmd(VIRTIO_BALLOON_CMD_ID_DONE);
  }

  status(): HintingStatusReply {
    return { host_cmd: this.hostCmd, guest_cmd: this.guestCmd };
  }

  /**
   * One chain of the hinting queue. Returns true when the config changed (the guest's STOP
   * acknowledged with DONE): the caller raises the config interrupt.
   */
  serve(mem: GuestMemory, chain: DescriptorChain, discard: (view: Uint8Array) => boolean): boolean {
    let configChanged = false;
    for (const d of chain.descriptors) {
      if (!d.writable && d.len === CMD_ID_SIZE) {
        const id = mem.readU32(d.addr);
        if (typeof id !== 'number') {
          this.metrics.inc('free_page_hint_fails');
          continue;
        }
        this.metrics.inc('free_page_hint_count');
        this.guestCmd = id;
        if (id === VIRTIO_BALLOON_CMD_ID_STOP && this.ackOnStop && this.hostCmd !== VIRTIO_BALLOON_CMD_ID_DONE) {
          this.setHostCmd(VIRTIO_BALLOON_CMD_ID_DONE);
          configChanged = true;
        }
        continue;
      }
      // Only blocks of the run the host asked for, while it has not said DONE.
      if (this.hostCmd === VIRTIO_BALLOON_CMD_ID_DONE || this.guestCmd !== this.hostCmd) continue;
      const view = d.addr % PAGE === 0 && d.len % PAGE === 0 ? mem.slice(d.addr, d.len) : undefined;
      if (view instanceof Uint8Array && discard(view)) this.metrics.inc('free_page_hint_freed', d.len);
      else this.metrics.inc('free_page_hint_fails');
    }
    return configChanged;
  }

  private setHostCmd(id: number): void {
    this.hostCmd = id;
    this.config.hintCmdId = id;
  }
}
