/**
 * The real clock: `performance.now()` for monotonic time, `Date.now()` for the wall clock and the
 * global timers. Works in browsers and in Node.
 */
import type { Clock, TimerHandle } from '../core/seams.ts';

type GlobalTimerHandle = ReturnType<typeof globalThis.setTimeout>;

export const realClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms) as TimerHandle,
  clearTimeout: (handle) => {
    if (handle !== undefined) globalThis.clearTimeout(handle as GlobalTimerHandle);
  },
};
