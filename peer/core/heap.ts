/**
 * A binary min-heap with lazy deletion: items that became stale (cancelled, finished) stay in the array
 * and are dropped when they reach the top, or all at once by `compact` when they pile up. Used by the
 * virtual clock (timers by due time) and the simulator's origin (responses by finish tag).
 */
export class MinHeap<T> {
  readonly #items: T[] = [];

  constructor(
    /** Strict order: true when `a` must come out before `b`. */
    private readonly before: (a: T, b: T) => boolean,
    /** Items that no longer count (skipped at the top, dropped by `compact`). */
    private readonly stale: (item: T) => boolean = () => false,
  ) {}

  /** Items held, stale ones included. */
  get length(): number {
    return this.#items.length;
  }

  push(item: T): void {
    const h = this.#items;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  /** The first item that is not stale (stale ones above it are dropped), or undefined. */
  peek(): T | undefined {
    for (;;) {
      const top = this.#items[0];
      if (top === undefined || !this.stale(top)) return top;
      this.#removeTop();
    }
  }

  /** Takes the first item that is not stale out, or undefined. */
  pop(): T | undefined {
    const top = this.peek();
    if (top !== undefined) this.#removeTop();
    return top;
  }

  /** Drops every stale item at once. */
  compact(): void {
    const live = this.#items.filter((t) => !this.stale(t));
    this.#items.length = 0;
    for (const t of live) this.push(t);
  }

  /** Every item that is not stale, in no particular order. */
  live(): T[] {
    return this.#items.filter((t) => !this.stale(t));
  }

  clear(): void {
    this.#items.length = 0;
  }

  #removeTop(): void {
    const h = this.#items;
    const last = h.pop();
    if (last === undefined || h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.before(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.before(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
