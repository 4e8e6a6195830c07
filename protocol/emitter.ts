/**
 * A small typed event emitter shared by every room (isomorphic: no Node `events`).
 * Listeners that throw are caught and reported through `listener-error`; they never break the emitter.
 */
export type EventMap = { [event: string]: (...args: never[]) => void };

export interface ListenerErrorInfo {
  event: string;
  error: unknown;
}

export class TypedEmitter<Events extends EventMap> {
  /** Type-level only (never set): lets helpers such as {@link waitFor} recover the event map. */
  declare readonly eventMap?: Events;
  /**
   * Listeners per event, in the order added, each listener once. The arrays are never changed, only
   * replaced: an emit goes through the list it started with, whatever its listeners add or remove,
   * and copies nothing.
   */
  readonly #listeners = new Map<keyof Events, readonly Events[keyof Events][]>();
  /** The wrapper of each `once` listener (made at the first: most emitters never get one). */
  #onceWrappers: WeakMap<Events[keyof Events], Events[keyof Events]> | undefined;

  /**
   * Called when a listener throws. Defaults to `console.error`; override per instance (a method, not
   * a closure per instance: emitters are made for every link and neighbour).
   */
  onListenerError({ event, error }: ListenerErrorInfo): void {
    console.error(`peertv: listener for "${event}" threw:`, error);
  }

  on<E extends keyof Events>(event: E, listener: Events[E]): this {
    const list = this.#listeners.get(event) ?? [];
    if (!list.includes(listener)) this.#listeners.set(event, [...list, listener]);
    return this;
  }

  once<E extends keyof Events>(event: E, listener: Events[E]): this {
    const wrapper = ((...args: Parameters<Events[E]>) => {
      this.off(event, listener);
      (listener as (...a: Parameters<Events[E]>) => void)(...args);
    }) as Events[E];
    (this.#onceWrappers ??= new WeakMap()).set(listener, wrapper);
    return this.on(event, wrapper);
  }

  /** Removes a listener added with `on` or `once`. */
  off<E extends keyof Events>(event: E, listener: Events[E]): this {
    const wrapper = this.#onceWrappers?.get(listener);
    if (wrapper && this.#remove(event, wrapper)) this.#onceWrappers?.delete(listener);
    else this.#remove(event, listener);
    return this;
  }

  #remove<E extends keyof Events>(event: E, listener: Events[keyof Events]): boolean {
    const list = this.#listeners.get(event);
    if (!list?.includes(listener)) return false;
    this.#listeners.set(
      event,
      list.filter((l) => l !== listener),
    );
    return true;
  }

  removeAllListeners(): void {
    this.#listeners.clear();
  }

  listenerCount<E extends keyof Events>(event: E): number {
    return this.#listeners.get(event)?.length ?? 0;
  }

  protected emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void {
    const list = this.#listeners.get(event);
    if (!list) return;
    for (const listener of list) {
      try {
        (listener as (...a: Parameters<Events[E]>) => void)(...args);
      } catch (error) {
        try {
          this.onListenerError({ event: String(event), error });
        } catch {
          /* a failing error reporter must not break the emitter either */
        }
      }
    }
  }
}

/** The event map of an emitter type. */
export type EventsOf<T> = T extends { readonly eventMap?: infer M } ? NonNullable<M> : never;
