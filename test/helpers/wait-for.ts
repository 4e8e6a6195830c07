/** Waiting for an emitter's event in tests and benchmarks (wall-clock timeout: not for the rooms). */
import type { EventsOf, TypedEmitter } from '../../protocol/index.ts';

/** Resolves with the arguments of the first emission of `event` (for tests and orchestration). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function waitFor<T extends TypedEmitter<any>, E extends keyof EventsOf<T> & string>(
  emitter: T,
  event: E,
  timeoutMs = 30_000,
): Promise<Parameters<EventsOf<T>[E]>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for "${event}"`));
    }, timeoutMs);
    const listener = (...args: Parameters<EventsOf<T>[E]>): void => {
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args);
    };
    emitter.on(event, listener);
  });
}
