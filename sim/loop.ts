/**
 * Virtual time for the simulator: one {@link ManualClock} shared by every engine, the tracker core, the
 * network, the origin and the source. Timers run one at a time in (due, scheduling) order, and after
 * each one the promise continuations it caused run before the next timer (a macrotask turn), as on a
 * real event loop, so `now()` in a continuation is the time of the event that caused it. Nothing waits
 * on the wall clock; nothing real (sockets, WebCrypto, real timers) may be used inside the simulated
 * world, or runs stop being deterministic.
 */
import { MessageChannel } from 'node:worker_threads';
import { ManualClock } from '../peer/index.ts';

/**
 * Lets every pending promise continuation run: all microtasks run before the next macrotask, and a
 * message on a channel of our own is the cheapest macrotask (about a third of `setImmediate`'s cost,
 * which also sends the loop through an idle poll each time).
 */
class MacrotaskTurn {
  readonly #channel = new MessageChannel();
  #wake: (() => void) | undefined;

  constructor() {
    this.#channel.port1.on('message', () => this.#wake?.());
  }

  next(): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#channel.port2.postMessage(0);
    });
  }

  close(): void {
    this.#channel.port1.close();
  }
}

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
    const turn = new MacrotaskTurn();
    try {
      await turn.next();
      while (this.clock.runNext(untilMs)) {
        events++;
        this.events++;
        await turn.next();
        if (progress && this.nowMs >= nextProgressAt) {
          progress({ nowMs: this.nowMs, events });
          nextProgressAt = this.nowMs + progressEveryMs;
        }
      }
    } finally {
      turn.close();
    }
    this.clock.jumpTo(untilMs);
    progress?.({ nowMs: this.nowMs, events });
  }
}
