/**
 * The FIFO servers of the in-memory network (memory-transport.ts): a peer's uplink and downlink, a
 * link direction's own bottleneck, a TURN relay. Each transmits whole messages one at a time at a rate
 * read when a message starts (a rate change applies from the next message served). With an infinite
 * rate a message passes through synchronously when nothing waits ahead of it: no timer. With a finite
 * rate each message costs exactly one timer, whose callback is bound once per server (no per-message
 * closure).
 */
import type { Clock } from './seams.ts';

/** What a server transmits: only its size matters here. */
export interface Sized {
  readonly size: number;
}

/**
 * A first-in first-out queue: an array read from a moving head (no `shift` per item, which moves them
 * all), compacted when the read part dominates.
 */
export class Fifo<T> {
  readonly #items: (T | undefined)[] = [];
  #head = 0;

  get size(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  /** The oldest item (the queue must not be empty). */
  peek(): T {
    return this.#items[this.#head]!;
  }

  /** Removes and returns the oldest item (the queue must not be empty). */
  shift(): T {
    const item = this.#items[this.#head]!;
    this.#items[this.#head++] = undefined;
    if (this.#head === this.#items.length) {
      this.#items.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items.splice(0, this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Removes every item, returning them oldest first. */
  drain(): T[] {
    const rest = this.#items.slice(this.#head) as T[];
    this.#items.length = 0;
    this.#head = 0;
    return rest;
  }
}

export class FifoServer<T extends Sized> {
  /** Bytes per second; Infinity = no delay. */
  rateBytesPerS: number;
  readonly #queue = new Fifo<T>();
  /** The message in transmission (a timer is pending for it). */
  #current: T | undefined;
  /** Bound once per server, in the constructor (no per-instance `name`: see MemoryLink's `#onArrival`). */
  readonly #onTimer: () => void;

  constructor(
    private readonly clock: Clock,
    rateBytesPerS: number,
    /** Called when a message has been transmitted. */
    private readonly onDone: (item: T) => void,
    /** Called before a message starts: true discards it (e.g. its link closed meanwhile). */
    private readonly discard?: (item: T) => boolean,
  ) {
    this.rateBytesPerS = rateBytesPerS;
    this.#onTimer = () => {
      const item = this.#current!;
      this.#current = undefined;
      // Checked again: a link destroyed while its message was being transmitted loses it.
      if (!this.discard?.(item)) this.onDone(item);
      this.#next();
    };
  }

  /** Messages waiting or in transmission. */
  get queued(): number {
    return this.#queue.size + (this.#current ? 1 : 0);
  }

  push(item: T): void {
    if (this.#current === undefined && this.#queue.size === 0) {
      // Idle: start at once, without touching the queue.
      this.#start(item);
      return;
    }
    this.#queue.push(item);
  }

  /** Starts the next message: transmits it at once (infinite rate) or sets its one timer. */
  #start(item: T): boolean {
    if (this.discard?.(item)) return false;
    const rate = this.rateBytesPerS;
    if (rate === Infinity) {
      this.onDone(item);
      return false;
    }
    this.#current = item;
    this.clock.setTimeout(this.#onTimer, (item.size / rate) * 1000);
    return true;
  }

  #next(): void {
    while (this.#current === undefined && this.#queue.size > 0) this.#start(this.#queue.shift());
  }
}
