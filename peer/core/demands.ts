/**
 * What the player waits for: one demand per segment, with the earliest deadline any caller gave and
 * everyone waiting on it. The scheduler reads them; a delivery settles one; the player moving on
 * drops one; destroying the engine rejects them all.
 */
import { segmentKey } from '../../protocol/index.ts';
import { EngineError, type LoadResult } from './engine-options.ts';

export interface Demand {
  readonly rendition: string;
  readonly mediaSequence: number;
  deadlineAt: number;
  readonly createdAt: number;
  /** HTTP was started only after waiting for a neighbour to hold it (P2P's responsibility if late). */
  waitedForP2p?: boolean;
  readonly waiters: { resolve: (r: LoadResult) => void; reject: (e: Error) => void }[];
}

export class Demands {
  readonly #channel: string;
  readonly #byKey = new Map<string, Demand>();

  constructor(channel: string) {
    this.#channel = channel;
  }

  #keyOf(rendition: string, mediaSequence: number): string {
    return segmentKey({ channel: this.#channel, rendition, mediaSequence });
  }

  get size(): number {
    return this.#byKey.size;
  }

  values(): IterableIterator<Demand> {
    return this.#byKey.values();
  }

  get(rendition: string, mediaSequence: number): Demand | undefined {
    return this.#byKey.get(this.#keyOf(rendition, mediaSequence));
  }

  /** Waits for the segment by `deadlineAt` (the earliest deadline of all callers counts). */
  want(rendition: string, mediaSequence: number, deadlineAt: number, now: number): Promise<LoadResult> {
    const key = this.#keyOf(rendition, mediaSequence);
    let demand = this.#byKey.get(key);
    if (!demand) {
      demand = { rendition, mediaSequence, deadlineAt, createdAt: now, waiters: [] };
      this.#byKey.set(key, demand);
    }
    demand.deadlineAt = Math.min(demand.deadlineAt, deadlineAt);
    const d = demand;
    return new Promise<LoadResult>((resolve, reject) => d.waiters.push({ resolve, reject }));
  }

  /** Hands the segment to everyone waiting for it. */
  settle(demand: Demand, result: LoadResult): void {
    const key = this.#keyOf(demand.rendition, demand.mediaSequence);
    if (this.#byKey.get(key) === demand) this.#byKey.delete(key);
    for (const w of demand.waiters) w.resolve(result);
  }

  /** Gives the demand up (its waiters get `dropped`); false when there was none. */
  drop(rendition: string, mediaSequence: number): boolean {
    const key = this.#keyOf(rendition, mediaSequence);
    const demand = this.#byKey.get(key);
    if (!demand) return false;
    this.#byKey.delete(key);
    for (const w of demand.waiters) w.reject(new EngineError('dropped', 'no longer needed'));
    return true;
  }

  /** Rejects every demand (the engine is destroyed). */
  rejectAll(err: Error): void {
    for (const d of this.#byKey.values()) for (const w of d.waiters) w.reject(err);
    this.#byKey.clear();
  }
}
