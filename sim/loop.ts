/**
 * Virtual time for the simulator: one {@link ManualClock} shared by every engine, the tracker core, the
 * network, the origin and the source. Timers run one at a time in (due, scheduling) order, and after
 * each one the promise continuations it caused run before the next timer (a macrotask turn), as on a
 * real event loop, so `now()` in a continuation is the time of the event that caused it. Nothing waits
 * on the wall clock; nothing real (sockets, WebCrypto, real timers) may be used inside the simulated
 * world, or runs stop being deterministic.
 */
import { ManualClock } from '../peer/index.ts';

/** Lets every pending promise continuation run (all microtasks run before a macrotask). */
const drainMicrotasks = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export interface RunProgress {
  /** Simulated ms reached. */
  nowMs: number;
  /** Timers run so far in this call. */
  events: number;
}

export class VirtualTime {
  readonly clock = new ManualClock({ startMs: 0 });
  /** Timers run since the start. */
  events = 0;

  get nowMs(): number {
    return this.clock.now();
  }

  /**
   * Runs every event up to `untilMs` (simulated), then sets the time to `untilMs`. Calls `progress`
   * about every `progressEveryMs` of simulated time.
   */
  async runUntil(
    untilMs: number,
    progress?: (p: RunProgress) => void,
    progressEveryMs = 1000,
  ): Promise<void> {
    let events = 0;
    let nextProgressAt = this.nowMs + progressEveryMs;
    await drainMicrotasks();
    while (this.clock.runNext(untilMs)) {
      events++;
      this.events++;
      await drainMicrotasks();
      if (progress && this.nowMs >= nextProgressAt) {
        progress({ nowMs: this.nowMs, events });
        nextProgressAt = this.nowMs + progressEveryMs;
      }
    }
    this.clock.jumpTo(untilMs);
    progress?.({ nowMs: this.nowMs, events });
  }
}
