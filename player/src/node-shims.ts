// Node globals some bundled dependencies (simple-peer, readable-stream) expect in browsers.
import { Buffer } from 'buffer';

const g = globalThis as unknown as { Buffer?: typeof Buffer; process?: unknown };
g.Buffer ??= Buffer;
g.process ??= {
  env: {},
  browser: true,
  version: '',
  versions: {},
  nextTick: (fn: (...a: unknown[]) => void, ...args: unknown[]) => queueMicrotask(() => fn(...args)),
};
export { Buffer };
