/**
 * Time and randomness of the tracker's session core, injected: real by default, virtual and seeded in
 * the simulator (sim/), so that a run is deterministic. {@link TrackerClock} has the shape of the
 * engine's `Clock` (peer/core/seams.ts), so the simulator hands one clock to engines and tracker alike;
 * it is declared here because tracker/ does not import peer/.
 */

/** Whatever `setTimeout` returned (a Node timer, a virtual timer id). */
export type TrackerTimer = unknown;

export interface TrackerClock {
  /** Milliseconds, monotonic (rate limits: only differences matter). */
  now(): number;
  /** Milliseconds since the Unix epoch (record timestamps, timeouts). */
  wallNow(): number;
  setTimeout(fn: () => void, ms: number): TrackerTimer;
  clearTimeout(handle: TrackerTimer | undefined): void;
}

/** The real clock: `performance.now`, `Date.now` and the global timers. */
export const realTrackerClock: TrackerClock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout | undefined),
};

/** Uniform in [0, 1): `Math.random` by default, a seeded generator in the simulator. */
export type RandomSource = () => number;

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * A peer id (16 base64url characters, as `crypto.randomBytes(12).toString('base64url')` gives) drawn
 * from `random`: for a seeded tracker core, whose ids must be the same from run to run.
 */
export function peerIdFrom(random: RandomSource): string {
  let id = '';
  for (let i = 0; i < 16; i++) id += ID_ALPHABET[Math.floor(random() * 64) & 63];
  return id;
}
