/** socket.io clients acting as peers and sources in tracker tests. */
import assert from 'node:assert/strict';
import { io, type Socket } from 'socket.io-client';
import type { Ack, JoinResult, PeerReport } from '../../protocol/index.ts';

/** A socket.io client that records every event it receives. */
export class Client {
  readonly log: { event: string; data: unknown }[] = [];
  readonly #waiters = new Set<() => void>();
  peerId = '';
  join: JoinResult | undefined;

  constructor(readonly socket: Socket) {
    socket.onAny((event: string, data: unknown) => {
      this.log.push({ event, data });
      for (const w of [...this.#waiters]) w();
    });
  }

  seen<T>(event: string, pred: (d: T) => boolean = () => true): T[] {
    return this.log.filter((e) => e.event === event && pred(e.data as T)).map((e) => e.data as T);
  }

  /** Resolves with the first matching event, already received or still to come. */
  waitFor<T>(event: string, pred: (d: T) => boolean = () => true, timeoutMs = 5000): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.seen<T>(event, pred)[0];
        if (hit === undefined) return false;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(hit);
        return true;
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(
          new Error(`timed out waiting for "${event}"; got ${JSON.stringify(this.log.map((e) => e.event))}`),
        );
      }, timeoutMs);
      if (!check()) this.#waiters.add(check);
    });
  }

  ask<T extends object = object>(event: string, ...args: unknown[]): Promise<Ack<T>> {
    return this.socket.timeout(5000).emitWithAck(event, ...args) as Promise<Ack<T>>;
  }

  /** Resolves with the reason once the connection is gone. */
  closed(timeoutMs = 5000): Promise<string> {
    return new Promise((resolve, reject) => {
      if (!this.socket.connected) return resolve('already');
      const t = setTimeout(() => reject(new Error('still connected')), timeoutMs);
      this.socket.once('disconnect', (reason) => {
        clearTimeout(t);
        resolve(reason);
      });
    });
  }
}

/** Every client opened (test files close them after each test). */
export const clients: Client[] = [];

export function open(url: string): Client {
  const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false });
  const c = new Client(socket);
  clients.push(c);
  return c;
}

export function connect(url: string): Promise<Client> {
  const c = open(url);
  return new Promise((resolve, reject) => {
    c.socket.once('connect', () => resolve(c));
    c.socket.once('connect_error', reject);
  });
}

export function ok<T extends object>(ack: Ack<T>): T {
  if (!ack.ok) assert.fail(`expected ok, got ${ack.error.code}: ${ack.error.message}`);
  return ack;
}

/** The error code of a refused ack. */
export function code(ack: Ack<object>): string {
  return ack.ok ? 'ok' : ack.error.code;
}

/** A valid peer report with nothing to say (fields in `over` replace the defaults). */
export const emptyReport = (over: Partial<PeerReport> = {}): PeerReport => ({
  rendition: '180p',
  bufferS: 2,
  held: null,
  uploadKbps: 100,
  downloadKbps: 100,
  httpBytes: 0,
  p2pBytes: 0,
  uploadedBytes: 0,
  neighbours: [],
  receivedFrom: {},
  ...over,
});

/** Polls `fn` until it returns something truthy (which is returned), or fails after `timeoutMs`. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 30));
  }
  throw new Error(`timed out waiting for ${what}`);
}
