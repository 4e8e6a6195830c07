/**
 * In-process trackers for tests: `startTracker(opts)` listens on a free port with the tests'
 * defaults (no periodic rebalancing, no per-address connect rate); `stopTrackers()` destroys every
 * tracker started so (call it in the file's `after`, once its clients are gone).
 */
import { Tracker, type TrackerOptions } from '../../tracker/index.ts';

const trackers: Tracker[] = [];

export async function stopTrackers(): Promise<void> {
  for (const t of trackers.splice(0)) await t.destroy();
}

export async function startTracker(opts: Partial<TrackerOptions> = {}): Promise<Tracker> {
  const t = new Tracker({ rebalanceIntervalMs: 60_000, ipConnectRate: 0, ...opts });
  trackers.push(t);
  await t.listen(0);
  return t;
}
