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
  readonly #listeners = new Map<keyof Events, Set<Events[keyof Events]>>();
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
      this.off(event, wrapper);
      (listener as (...a: Parameters<Events[E]>) => void)(...args);
    }) as Events[E];
    return this.on(event, wrapper);
  }

  off<E extends keyof Events>(event: E, listener: Events[E]): this {
    this.#listeners.get(event)?.delete(listener);
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

/** Resolves with the first emission of `event` (convenience for tests and orchestration). */
export function waitFor<Events extends EventMap, E extends keyof Events>(
  emitter: TypedEmitter<Events>,
  event: E,
  timeoutMs = 30_000,
): Promise<Parameters<Events[E]>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for "${String(event)}"`));
    }, timeoutMs);
    const listener = ((...args: Parameters<Events[E]>) => {
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args);
    }) as Events[E];
    emitter.on(event, listener);
  });
}
