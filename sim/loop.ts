/**
 * Virtual time for the simulator: one {@link ManualClock} shared by every engine, the tracker core, the
 * network, the origin and the source. Timers run one at a time in (due, scheduling) order, and after
 * each one the promise continuations it caused run before the next timer, as after a macrotask on a
 * real event loop, so `now()` in a continuation is the time of the event that caused it. Nothing waits
 * on the wall clock; nothing real (sockets, WebCrypto, real timers) may be used inside the simulated
 * world, or runs stop being deterministic; nor `process.nextTick`, which the loop itself runs on.
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

/** Already settled: `then` on it queues a microtask (cheaper than `queueMicrotask`, a resource each). */
const settled = Promise.resolve();

/** Timers run between two macrotask turns (which let real I/O, such as the progress output, through). */
const TIMERS_PER_TURN = 1000;

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
      for (;;) {
        const ran = await this.#runSome(untilMs, TIMERS_PER_TURN);
        events += ran;
        this.events += ran;
        if (progress && this.nowMs >= nextProgressAt) {
          progress({ nowMs: this.nowMs, events });
          nextProgressAt = this.nowMs + progressEveryMs;
        }
        if (ran < TIMERS_PER_TURN) break;
        await turn.next();
      }
    } finally {
      turn.close();
    }
    this.clock.jumpTo(untilMs);
    progress?.({ nowMs: this.nowMs, events });
  }

  /**
   * Runs up to `max` timers due by `untilMs`, each after every promise continuation of the one before
   * has run, without a macrotask turn between them: a timer runs from a `process.nextTick` that is
   * queued by a microtask of the timer before, and Node takes the next tick only once the microtask
   * queue is empty (continuations queued by continuations included). Resolves with the number run.
   */
  #runSome(untilMs: number, max: number): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      let ran = 0;
      const step = (): void => {
        try {
          if (ran >= max || !this.clock.runNext(untilMs)) return resolve(ran);
          ran++;
          settled.then(queueStep);
        } catch (err) {
          reject(err as Error);
        }
      };
      const queueStep = (): void => process.nextTick(step);
      queueStep();
    });
  }
}
