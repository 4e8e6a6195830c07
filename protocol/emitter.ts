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
  readonly #listeners = new Map<keyof Events, Set<Events[keyof Events]>>();
  readonly #onceWrappers = new WeakMap<Events[keyof Events], Events[keyof Events]>();
  /** Called when a listener throws. Defaults to `console.error`; override per instance. */
  onListenerError: (info: ListenerErrorInfo) => void = ({ event, error }) =>
    console.error(`peertv: listener for "${event}" threw:`, error);

  on<E extends keyof Events>(event: E, listener: Events[E]): this {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener);
    return this;
  }

  once<E extends keyof Events>(event: E, listener: Events[E]): this {
    const wrapper = ((...args: Parameters<Events[E]>) => {
      this.off(event, listener);
      (listener as (...a: Parameters<Events[E]>) => void)(...args);
    }) as Events[E];
    this.#onceWrappers.set(listener, wrapper);
    return this.on(event, wrapper);
  }

  /** Removes a listener added with `on` or `once`. */
  off<E extends keyof Events>(event: E, listener: Events[E]): this {
    const set = this.#listeners.get(event);
    const wrapper = this.#onceWrappers.get(listener);
    if (wrapper && set?.delete(wrapper)) this.#onceWrappers.delete(listener);
    else set?.delete(listener);
    return this;
  }

  removeAllListeners(): void {
    this.#listeners.clear();
  }

  listenerCount<E extends keyof Events>(event: E): number {
    return this.#listeners.get(event)?.size ?? 0;
  }

  protected emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
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
