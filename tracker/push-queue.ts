/**
 * Neighbour pushes, coalesced: every change for a peer made within one short window (joins, leaves,
 * rendition switches, top-ups) reaches it as one `neighbours` message, whatever the number of changes.
 * The latest word about each neighbour wins (added then removed in one window: removed).
 */
import { realTrackerClock, type TrackerClock, type TrackerTimer } from './clock.ts';

export interface NeighbourChanges {
  add: string[];
  remove: string[];
}

export class PushQueue {
  readonly #pending = new Map<string, Map<string, 'add' | 'remove'>>();
  #timer: TrackerTimer | undefined;
  #closed = false;

  constructor(
    /** Sends one peer's coalesced changes (also called with none, for a first-tier change alone). */
    private readonly send: (peerId: string, changes: NeighbourChanges) => void,
    private readonly delayMs = 20,
    /** Timers (the global ones by default; the simulator's virtual clock). */
    private readonly clock: Pick<TrackerClock, 'setTimeout' | 'clearTimeout'> = realTrackerClock,
  ) {}

  add(peerId: string, add: readonly string[], remove: readonly string[]): void {
    if (this.#closed) return;
    let m = this.#pending.get(peerId);
    if (!m) this.#pending.set(peerId, (m = new Map()));
    for (const id of remove) m.set(id, 'remove');
    for (const id of add) m.set(id, 'add');
    this.#timer ??= this.clock.setTimeout(() => this.flush(), this.delayMs);
  }

  /** Drops what is pending for a peer that left. */
  forget(peerId: string): void {
    this.#pending.delete(peerId);
  }

  flush(): void {
    this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = [...this.#pending];
    this.#pending.clear();
    for (const [peerId, m] of batch) {
      const changes: NeighbourChanges = { add: [], remove: [] };
      for (const [id, what] of m) changes[what].push(id);
      this.send(peerId, changes);
    }
  }

  /** Drops what is pending and sends nothing more. Idempotent. */
  destroy(): void {
    this.#closed = true;
    this.clock.clearTimeout(this.#timer);
    this.#pending.clear();
  }
}
