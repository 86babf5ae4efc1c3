/**
 * A device worker's wait: poll() on its fds, with the rate limiter's timer as the timeout.
 *
 * The timer is armed once, when the device first reports a retry delay, and fires at that
 * time however often other events (frames, notifies, completions) wake the worker meanwhile;
 * re-arming it from each wake-up would push it back forever under a steady stream of events.
 * That once stalled a TCP upload through a throttled interface for good: its ACKs woke the
 * worker faster than the retry delay ran out.
 */
import { pollReadable } from '../../kvm/eventfd.js';

export class DeviceLoopTimer {
  /** performance.now() at which the timer fires; Infinity when disarmed. */
  private at = Infinity;

  /**
   * Sleeps until one of `fds` is readable or the timer fires. `retryMs` is the device's
   * current retry delay (0: nothing throttled, the timer is disarmed); an armed timer keeps
   * its time unless the device now asks for an earlier one. Returns the readable fds.
   */
  wait(fds: readonly number[], retryMs: number): number[] {
    return pollReadable(fds, this.timeoutMs(retryMs));
  }

  /**
   * Arms the timer as `wait` does and returns the poll(2) timeout to sleep with (-1: none), for
   * a worker that polls its own fd set (the vsock worker's PollSet).
   */
  timeoutMs(retryMs: number): number {
    const now = performance.now();
    if (retryMs <= 0) this.at = Infinity;
    else this.at = Math.min(this.at, now + retryMs);
    return this.at === Infinity ? -1 : Math.max(0, Math.ceil(this.at - now));
  }

  /** True once the armed time has passed; it disarms (the device re-arms through `wait`). */
  due(): boolean {
    if (performance.now() < this.at) return false;
    this.at = Infinity;
    return true;
  }
}
