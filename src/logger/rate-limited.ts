/**
 * Per-call-site log rate limiting (firecracker src/vmm/src/logger/metrics.rs; logger/rate_limited.rs): a GCRA token bucket of 10
 * messages per 5 s. After a cold start 10 calls pass back-to-back, then one per 500 ms. Denied
 * calls count `logger.rate_limited_log_count`; the next allowed call first reports
 * "<n> messages were suppressed due to rate limiting" at warn level.
 */

/** Messages allowed per refill period (DEFAULT_BURST). */
export const DEFAULT_BURST = 10;
/** Refill period in ms (DEFAULT_REFILL_TIME_MS). */
export const DEFAULT_REFILL_TIME_MS = 5000;

// Taken on first use, not at module load: the CLI's startup snapshot loads this module at
// build time, and performance.now() starts again in the process that runs it.
let epoch: number | undefined;
const sinceEpoch = (): number => performance.now() - (epoch ??= performance.now());

/** One call site's limiter. */
export class LogRateLimiter {
  private tatMs = 0;
  private suppressed = 0;
  private readonly periodMs: number;

  constructor(readonly burst = DEFAULT_BURST, readonly refillMs = DEFAULT_REFILL_TIME_MS, private readonly now = sinceEpoch) {
    this.periodMs = Math.floor(refillMs / burst);
  }

  /**
   * `check_maybe_suppressed`: `{allowed, reportSuppressed}` where `reportSuppressed` is the count
   * to report before the message (0 = nothing to report).
   */
  check(): { allowed: boolean; reportSuppressed: number } {
    const now = Math.floor(this.now());
    const earliest = Math.max(this.tatMs, now);
    const next = earliest + this.periodMs;
    if (next - now > this.refillMs) {
      this.suppressed++;
      return { allowed: false, reportSuppressed: 0 };
    }
    this.tatMs = next;
    const reportSuppressed = this.suppressed;
    this.suppressed = 0;
    return { allowed: true, reportSuppressed };
  }
}
