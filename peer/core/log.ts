/**
 * Debug logs of one peer, one namespace per component: `peertv:peer:<id>:<component>` (`<id>` is
 * `new` until the tracker gave one), so `DEBUG=peertv:peer:*:scheduler` follows every peer's
 * scheduler and `DEBUG=peertv:peer:abc123:*` one peer. Quiet by default (the `debug` package; in a
 * browser, `localStorage.debug`). Isomorphic: `debug` reads no wall clock that decides anything.
 */
import createDebug from 'debug';

export type Log = (formatter: string, ...args: unknown[]) => void;

/** Components of the engine that log. */
export type LogComponent =
  'engine' | 'scheduler' | 'transfers' | 'links' | 'tracker' | 'playlist' | 'attestations' | 'upload';

/** Namespaces kept at most (a peer's id changes only when it joins again). */
const MAX_NAMESPACES = 32;

/** A log factory for one peer whose id may change (`peerId()` is read at each line). */
export function peerLogs(peerId: () => string): (component: LogComponent) => Log {
  const loggers = new Map<string, createDebug.Debugger>();
  const loggerFor = (namespace: string): createDebug.Debugger => {
    let d = loggers.get(namespace);
    if (!d) {
      if (loggers.size >= MAX_NAMESPACES) loggers.clear();
      d = createDebug(namespace);
      loggers.set(namespace, d);
    }
    return d;
  };
  return (component) => {
    // The logger of the current id, looked up again only when the id changed (hot paths log often).
    let id: string | undefined;
    let d: createDebug.Debugger | undefined;
    return (formatter, ...args) => {
      const now = peerId() || 'new';
      if (now !== id || !d) {
        id = now;
        d = loggerFor(`peertv:peer:${now}:${component}`);
      }
      if (d.enabled) d(formatter, ...args);
    };
  };
}
