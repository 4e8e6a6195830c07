/**
 * RTMP ingest for OBS and other encoders: `rtmp://HOST:1935/live/<streamKey>`.
 *
 * A small RTMP server (handshake, chunk streams, AMF0 commands) that accepts *publishers only*. The
 * stream key is checked at `publish`, before any media is taken: a wrong key gets
 * `NetStream.Publish.BadName` and the connection is closed, so nothing is published. Accepted media
 * is re-muxed to FLV and handed to the channel's encoder on its stdin (see `IngestSession`).
 *
 * This file is the listening server and its admission policy; one connection is an {@link RtmpSession}
 * (session.ts), its bytes are parsed by chunks.ts and handshake.ts, its options live in options.ts.
 *
 * Until its `publish` is accepted a connection is *pending* and holds almost nothing: it must get
 * there within `publishDeadlineMs` of being accepted (however slowly it trickles bytes), it works under
 * the small `pendingLimits` (message size, chunk size, chunk streams, bytes buffered, bytes queued for
 * it), and pending connections are capped per address and server-wide. A newcomer is never turned away
 * for lack of room: the least advanced, oldest pending connection of the same address (per-address cap)
 * or of the address holding the most pending connections (global cap) is closed instead, so whoever has
 * the stream key always gets through. Authenticated publishers never count against those caps and work
 * under `publisherLimits` (a 4K keyframe can take a few MB).
 */
import crypto from 'node:crypto';
import net from 'node:net';
import createDebug from 'debug';
import { TypedEmitter } from '../../protocol/index.ts';
import { addressBucket } from '../address-bucket.ts';
import {
  rtmpOptions,
  type RtmpIngestConfig,
  type RtmpIngestEvents,
  type RtmpIngestOptions,
  type RtmpIngestStats,
} from './options.ts';
import { RtmpSession, type SessionOwner } from './session.ts';

const debug = createDebug('peertv:source:rtmp');

/** Constant-time comparison of stream keys. */
export function streamKeyMatches(given: string, expected: string): boolean {
  const a = crypto.createHash('sha256').update(given).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

/** A pending connection that took no step towards `publish` for this long is stalled (first to evict). */
const STALLED_AFTER_MS = 1000;

/**
 * The pending connection that least looks like an encoder on its way to `publish`: one stalled (no
 * handshake or command step for {@link STALLED_AFTER_MS}: trickling, sitting), the longest stalled
 * first; when every one is still stepping forward, the least advanced, the one whose last step is
 * oldest among equals. A real encoder takes a step every round trip, so it is never stalled, and a
 * newcomer leaves the least advanced rank within its first round trip.
 */
function pickVictim(candidates: Iterable<RtmpSession>): RtmpSession | undefined {
  const now = performance.now();
  const stalled = (c: RtmpSession) => now - c.lastStepAtMs >= STALLED_AFTER_MS;
  let victim: RtmpSession | undefined;
  for (const c of candidates) {
    if (!victim) victim = c;
    else if (stalled(c) !== stalled(victim)) {
      if (stalled(c)) victim = c;
    } else if (stalled(c)) {
      if (c.lastStepAtMs < victim.lastStepAtMs) victim = c;
    } else if (c.progress < victim.progress) victim = c;
    else if (c.progress === victim.progress && c.lastStepAtMs < victim.lastStepAtMs) victim = c;
  }
  return victim;
}

export class RtmpIngestServer extends TypedEmitter<RtmpIngestEvents> {
  readonly #opts: RtmpIngestOptions;
  readonly #server: net.Server;
  readonly #sessions = new Set<RtmpSession>();
  /** Pending connections by address bucket, oldest first. */
  readonly #pending = new Map<string, Set<RtmpSession>>();
  #pendingCount = 0;
  #destroyed: Promise<void> | undefined;

  constructor(config: RtmpIngestConfig) {
    super();
    this.#opts = rtmpOptions(config);
    const owner: SessionOwner = {
      report: (event, ...args) => this.emit(event, ...args),
      leavePending: (session) => this.#leavePending(session),
      gone: (session) => this.#sessions.delete(session),
    };
    this.#server = net.createServer((socket) => {
      if (this.#destroyed) {
        socket.destroy();
        return;
      }
      const bucket = addressBucket(socket.remoteAddress);
      this.#makeRoom(bucket);
      const session = new RtmpSession(socket, this.#opts, owner, bucket);
      this.#sessions.add(session);
      let set = this.#pending.get(bucket);
      if (!set) this.#pending.set(bucket, (set = new Set()));
      set.add(session);
      this.#pendingCount++;
    });
  }

  /** Evicts pending connections so that one more fits under both caps. */
  #makeRoom(bucket: string): void {
    const own = this.#pending.get(bucket);
    if (own && own.size >= this.#opts.maxPendingPerAddress) pickVictim(own)?.evict();
    if (this.#pendingCount >= this.#opts.maxPendingConnections) {
      // From the address holding the most pending connections (all of them, when several tie).
      let most = 0;
      for (const set of this.#pending.values()) most = Math.max(most, set.size);
      const candidates = [...this.#pending.values()]
        .filter((set) => set.size === most)
        .flatMap((set) => [...set]);
      pickVictim(candidates)?.evict();
    }
  }

  #leavePending(session: RtmpSession): void {
    const set = this.#pending.get(session.bucket);
    if (!set?.delete(session)) return;
    this.#pendingCount--;
    if (set.size === 0) this.#pending.delete(session.bucket);
  }

  stats(): RtmpIngestStats {
    let bufferedBytes = 0;
    let pendingBufferedBytes = 0;
    for (const c of this.#sessions) {
      bufferedBytes += c.bufferedBytes;
      if (c.pending) pendingBufferedBytes += c.bufferedBytes;
    }
    return {
      connections: this.#sessions.size,
      pending: this.#pendingCount,
      bufferedBytes,
      pendingBufferedBytes,
    };
  }

  listen(port: number, host = '127.0.0.1'): Promise<number> {
    if (this.#destroyed) return Promise.reject(new Error('RtmpIngestServer was destroyed'));
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        if (this.#destroyed) {
          // Destroyed while binding: do not stay bound.
          this.#server.close();
          reject(new Error('RtmpIngestServer was destroyed'));
          return;
        }
        resolve((this.#server.address() as net.AddressInfo).port);
      });
    });
  }

  get port(): number | undefined {
    return (this.#server.address() as net.AddressInfo | null)?.port;
  }

  get destroyed(): boolean {
    return this.#destroyed !== undefined;
  }

  /**
   * Stops listening and closes every session (each ends its socket, the encoder's FLV input ends);
   * resolves once every socket is closed. Idempotent: every call returns the same promise.
   */
  destroy(): Promise<void> {
    this.#destroyed ??= new Promise<void>((resolve) => {
      debug('destroying: %d sessions', this.#sessions.size);
      const sessions = [...this.#sessions];
      for (const s of sessions) s.destroy('server closing');
      this.#pending.clear();
      this.#pendingCount = 0;
      const closed = Promise.all(sessions.map((s) => s.closed));
      const stopped = new Promise<void>((done) =>
        this.#server.listening ? this.#server.close(() => done()) : done(),
      );
      void Promise.all([closed, stopped]).then(() => {
        this.#sessions.clear();
        resolve();
      });
    });
    return this.#destroyed;
  }
}
