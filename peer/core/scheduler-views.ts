/**
 * Read-only views of a neighbour for the scheduler, made once per neighbour and read live: a scheduling
 * round runs many times a second per peer, so it must not copy every neighbour's state each time.
 */
import type { Neighbour } from './neighbour.ts';
import type { NeighbourView } from './scheduler.ts';

class LiveNeighbourView implements NeighbourView {
  constructor(
    readonly n: Neighbour,
    private readonly receivedFrom: Readonly<Record<string, number>>,
    private readonly ranks: ReadonlyMap<string, number>,
    private readonly feeding: Feeding,
  ) {}
  get id(): string {
    return this.n.id;
  }
  get open(): boolean {
    return this.n.open;
  }
  get demoted(): boolean {
    return this.n.demoted;
  }
  get busyUntil(): number {
    return this.n.busyUntil;
  }
  get inFlight(): number {
    return this.n.downloads.size;
  }
  get firstByteMs(): number {
    return this.n.firstByteMs.value;
  }
  get throughputBps(): number {
    return this.n.throughput.value;
  }
  get receivedBytes(): number {
    return this.receivedFrom[this.n.id] ?? 0;
  }
  get supplierRank(): number {
    return this.ranks.get(this.n.id) ?? Infinity;
  }
  holdsSegment(rendition: string, mediaSequence: number): boolean {
    return this.n.holdsSegment(rendition, mediaSequence);
  }
  receivingSegment(rendition: string, mediaSequence: number): boolean {
    // Only while we relay the segment to no one: a relay asking a relay could otherwise close a loop
    // (each waiting for the other's last bytes). Taking from one that receives it from us is that loop.
    return this.n.receivingSegment(rendition, mediaSequence) && !this.feeding(rendition, mediaSequence);
  }
}

/** Whether we are sending the segment to anyone. */
export type Feeding = (rendition: string, mediaSequence: number) => boolean;

/** The views of the current neighbours, in linking order (a neighbour keeps its view while linked). */
export class NeighbourViews {
  /** The last list handed out: handed out again while the neighbours are the same, in the same order. */
  #list: LiveNeighbourView[] = [];

  constructor(
    private readonly receivedFrom: Readonly<Record<string, number>>,
    /** The tracker's ranked suppliers: id → rank. */
    private readonly ranks: ReadonlyMap<string, number>,
    private readonly feeding: Feeding,
  ) {}

  of(neighbours: ReadonlyMap<string, Neighbour>): readonly NeighbourView[] {
    const last = this.#list;
    let i = 0;
    let same = true;
    for (const n of neighbours.values()) {
      if (i >= last.length || last[i]!.n !== n) {
        same = false;
        break;
      }
      i++;
    }
    if (same && i === last.length) return last;
    const byNeighbour = new Map<Neighbour, LiveNeighbourView>();
    for (const v of last) byNeighbour.set(v.n, v);
    const list: LiveNeighbourView[] = [];
    for (const n of neighbours.values())
      list.push(byNeighbour.get(n) ?? new LiveNeighbourView(n, this.receivedFrom, this.ranks, this.feeding));
    this.#list = list;
    return list;
  }
}
