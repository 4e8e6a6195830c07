/**
 * The origin: the routes that serve playlists, segments, attestations and channel metadata over HTTP
 * (express), with CORS. How it answers (content types, cache headers, byte ranges, byte counting) is in
 * origin-responses.ts; which connections and requests it admits (descriptor budget, per-address caps,
 * timeouts, pipelining) is the {@link ConnectionGuard}'s.
 *
 * The URL layout is protocol's (`protocol/origin-layout.ts`: channel.json, live and recorded
 * playlists, segments and their attestations, attestation runs, all under `/channels/<id>/`).
 */
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Request, type Response, type NextFunction } from 'express';
import createDebug from 'debug';
import {
  atOrigin,
  isChannelId,
  isRenditionName,
  originPaths,
  playlistSegmentUri,
} from '../protocol/index.ts';
import type { SourceChannel } from './channel.ts';
import {
  ConnectionGuard,
  DEFAULT_CONNECTION_GUARD,
  type ConnectionGuardOptions,
  type ConnectionStats,
  type OriginLimits,
} from './connection-guard.ts';
import {
  IMMUTABLE,
  newCounters,
  sendError,
  sendJson,
  sendSegmentFile,
  sendText,
  TYPES,
  type ChannelCounters,
} from './origin-responses.ts';
import { masterPlaylist, mediaPlaylist } from './playlists.ts';
import { BROADCAST_ID_PATTERN, type Broadcast, type Entry } from './store.ts';

const debug = createDebug('peertv:source:origin');

const MAX_ATTESTATION_BATCH = 500;

/** The origin's options: where it is reached, CORS, and how it protects its process (see connection-guard.ts). */
export interface OriginOptions extends ConnectionGuardOptions {
  /** Base URL that players and peers are told to fetch from (CDN / reverse proxy); default: as bound. */
  publicUrl: string | undefined;
  /** Value of Access-Control-Allow-Origin (segments are public and signed). */
  corsOrigin: string;
}

export const DEFAULT_ORIGIN: OriginOptions = {
  publicUrl: undefined,
  corsOrigin: '*',
  ...DEFAULT_CONNECTION_GUARD,
};

export class Origin {
  readonly app: express.Express;
  readonly #channels = new Map<string, SourceChannel>();
  readonly #counters = new Map<string, ChannelCounters>();
  readonly #guard: ConnectionGuard;
  #server: http.Server | undefined;
  #publicUrl: string | undefined;
  #lastRequestAtMs = 0;
  #destroyed: Promise<void> | undefined;

  constructor(opts: Partial<OriginOptions> = {}) {
    const o: OriginOptions = { ...DEFAULT_ORIGIN, ...opts };
    this.#guard = new ConnectionGuard(o);
    this.#publicUrl = o.publicUrl?.replace(/\/+$/, '');
    const app = express();
    app.disable('x-powered-by');
    app.set('etag', false);
    app.use((req, res, next) => {
      this.#lastRequestAtMs = Date.now();
      res.setHeader('Access-Control-Allow-Origin', o.corsOrigin);
      res.setHeader('Access-Control-Expose-Headers', 'Content-Length, Content-Range, Accept-Ranges');
      if (req.method === 'OPTIONS') {
        res.setHeader('Access-Control-Allow-Methods', 'GET, HEAD, OPTIONS');
        res.setHeader('Access-Control-Allow-Headers', 'Range');
        res.setHeader('Access-Control-Max-Age', '86400');
        res.status(204).end();
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('Allow', 'GET, HEAD, OPTIONS');
        sendError(res, 405, 'method not allowed');
        return;
      }
      next();
    });
    app.get('/', (_req, res) =>
      sendJson(res, undefined, { channels: [...this.#channels.keys()] }, 'no-cache'),
    );
    app.get('/stats', (_req, res) =>
      sendJson(
        res,
        undefined,
        { channels: this.counters(), connections: this.connectionStats() },
        'no-cache',
      ),
    );
    app.use('/channels', (req, res, next) => this.#route(req, res, next));
    app.use((_req: Request, res: Response) => sendError(res, 404, 'not found'));
    app.use((err: Error, _req: Request, res: Response, _next: NextFunction) => {
      debug('request failed: %s', err.message);
      if (!res.headersSent) sendError(res, 500, 'internal error');
      else res.destroy();
    });
    this.app = app;
  }

  get publicUrl(): string {
    if (this.#publicUrl) return this.#publicUrl;
    const addr = this.#server?.address() as AddressInfo | null | undefined;
    if (!addr) throw new Error('origin is not listening and has no public URL');
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    return `http://${host}:${addr.port}`;
  }

  /** The connection caps in force (undefined until the origin listens). */
  get limits(): OriginLimits | undefined {
    return this.#guard.limits;
  }

  /** When the last request arrived (`Date.now()` clock; 0: none yet). */
  get lastRequestAtMs(): number {
    return this.#lastRequestAtMs;
  }

  addChannel(channel: SourceChannel): void {
    const id = channel.settings.id;
    if (this.#channels.has(id)) throw new Error(`channel ${id} is already served`);
    this.#channels.set(id, channel);
    this.#counters.set(id, newCounters());
  }

  removeChannel(id: string): void {
    this.#channels.delete(id);
  }

  /** Bytes and requests served, per channel and kind (a copy). */
  counters(): Record<string, ChannelCounters> {
    return Object.fromEntries([...this.#counters].map(([id, c]) => [id, structuredClone(c)]));
  }

  connectionStats(): ConnectionStats {
    return this.#guard.stats();
  }

  channelInfo(channel: SourceChannel): Record<string, unknown> {
    const id = channel.settings.id;
    const b = channel.broadcast;
    return {
      id: channel.settings.id,
      title: b?.title ?? channel.settings.title,
      status: channel.status,
      originUrl: this.publicUrl,
      publicKey: channel.store.signer.publicKey,
      publicKeyAlgorithm: 'Ed25519',
      segmentDurationS: b?.segmentDurationS ?? channel.settings.segmentDurationS,
      renditions: (b?.ladder ?? channel.settings.ladder).map((r) => ({ ...r })),
      live:
        channel.status === 'idle'
          ? null
          : { master: atOrigin(this.publicUrl, originPaths.liveMaster(id)), broadcast: b?.id },
      recordings: channel.store
        .broadcasts()
        .filter((r) => r.endedAtMs !== null)
        .map((r) => ({
          id: r.id,
          title: r.title,
          startedAt: new Date(r.startedAtMs).toISOString(),
          endedAt: new Date(r.endedAtMs!).toISOString(),
          master: atOrigin(this.publicUrl, originPaths.recordingMaster(id, r.id)),
        })),
    };
  }

  /**
   * Listens; the connection caps are fixed now from the descriptor limit in force. Throws a ConfigError
   * when the limit leaves no room for connections next to publication's reserve.
   */
  listen(port: number, host = '127.0.0.1'): Promise<http.Server> {
    if (this.#destroyed) return Promise.reject(new Error('origin was destroyed'));
    if (this.#server) return Promise.reject(new Error('origin is already listening'));
    let server: http.Server;
    try {
      server = this.#guard.createServer(this.app);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return new Promise((resolve, reject) => {
      server.once('error', (err) => {
        this.#guard.abandon(server);
        reject(err);
      });
      server.listen(port, host, () => {
        server.removeAllListeners('error');
        server.on('error', (err) => debug('server error: %s', err.message));
        this.#server = server;
        const limits = this.#guard.limits!;
        debug(
          'listening: at most %d connections, %d per address (descriptor limit %s)',
          limits.maxConnections,
          limits.maxConnectionsPerAddress,
          limits.descriptorLimit,
        );
        resolve(server);
      });
    });
  }

  /**
   * Resolves once no request has arrived for `quietMs` (viewers reached the end of a broadcast and
   * stopped polling), or after `maxMs`.
   */
  async waitQuiet(quietMs: number, maxMs: number): Promise<void> {
    const deadline = Date.now() + maxMs;
    for (;;) {
      const now = Date.now();
      const quietFor = now - this.#lastRequestAtMs;
      if (quietFor >= quietMs || now >= deadline || !this.#server) return;
      await new Promise((r) => setTimeout(r, Math.min(quietMs - quietFor, deadline - now) + 10));
    }
  }

  /**
   * Stops accepting connections, closes idle ones, lets requests in progress finish for up to
   * `graceMs`, then closes the rest (see {@link ConnectionGuard.destroy}). The channels are not the
   * origin's: they are only no longer served. Idempotent: every call returns the same promise.
   */
  destroy(graceMs = 0): Promise<void> {
    this.#destroyed ??= (async () => {
      this.#server = undefined;
      await this.#guard.destroy(graceMs);
      this.#channels.clear();
      debug('destroyed');
    })();
    return this.#destroyed;
  }

  // ---- routing ----

  #route(req: Request, res: Response, next: NextFunction): void {
    // Raw path: reject anything encoded or relative before matching (no traversal, no surprises).
    const raw = req.path;
    if (raw.includes('%') || raw.includes('..') || raw.includes('//') || raw.includes('\\'))
      return sendError(res, 400, 'bad path');
    const parts = raw.split('/').filter(Boolean);
    const [channelId, section, a, b, ...rest] = parts;
    if (!isChannelId(channelId)) return sendError(res, 404, 'unknown channel');
    const channel = this.#channels.get(channelId);
    if (!channel) return sendError(res, 404, 'unknown channel');
    const counters = this.#counters.get(channelId)!;

    if (section === 'channel.json' && a === undefined)
      return sendJson(res, counters, this.channelInfo(channel), 'no-cache', 'metadata');
    if (section === 'live' && a !== undefined && b === undefined)
      return this.#livePlaylist(res, channel, counters, a);
    if (section === 'recordings' && a !== undefined && b !== undefined && rest.length === 0)
      return this.#recordingPlaylist(res, channel, counters, a, b);
    if (section === 'segments' && a !== undefined && b !== undefined && rest.length === 0)
      return this.#segment(req, res, channel, counters, a, b);
    if (section === 'attestations' && a !== undefined && b === undefined)
      return this.#attestationRun(req, res, channel, counters, a);
    next();
  }

  #livePlaylist(res: Response, channel: SourceChannel, counters: ChannelCounters, file: string): void {
    const b = channel.broadcast;
    if (!b) return sendError(res, 404, 'channel offline: nothing broadcast yet');
    const live = b.endedAtMs === null;
    const cache = `public, max-age=${Math.max(1, Math.floor(b.segmentDurationS / 2))}`;
    if (file === 'master.m3u8')
      return sendText(
        res,
        counters,
        this.#master(b, (r) => `${r}.m3u8`),
        TYPES.m3u8,
        cache,
      );
    const r = /^([a-z0-9][a-z0-9_-]*)\.m3u8$/.exec(file)?.[1];
    if (!r || !b.ladder.some((x) => x.name === r)) return sendError(res, 404, 'unknown rendition');
    const last = channel.store.lastSequenceOf(b);
    if (last === undefined) return sendError(res, 404, 'broadcast starting: no segment yet');
    const window = channel.settings.playlistWindow;
    const entries = channel.store.entries(r, Math.max(b.firstSequence, last - window + 1), last);
    const text = mediaPlaylist({
      entries,
      segmentDurationS: b.segmentDurationS,
      uri: (seq) => playlistSegmentUri.live(r, seq),
      ended: !live,
      vod: false,
    });
    sendText(res, counters, text, TYPES.m3u8, live ? cache : 'public, max-age=60');
  }

  #recordingPlaylist(
    res: Response,
    channel: SourceChannel,
    counters: ChannelCounters,
    id: string,
    file: string,
  ): void {
    const b = BROADCAST_ID_PATTERN.test(id) ? channel.store.broadcast(id) : undefined;
    if (!b) return sendError(res, 404, 'unknown recording');
    if (b.endedAtMs === null)
      return sendError(res, 409, 'broadcast still live: its recording is not final yet');
    const cache = 'public, max-age=3600';
    if (file === 'master.m3u8')
      return sendText(
        res,
        counters,
        this.#master(b, (r) => `${r}.m3u8`),
        TYPES.m3u8,
        cache,
      );
    const r = /^([a-z0-9][a-z0-9_-]*)\.m3u8$/.exec(file)?.[1];
    if (!r || !b.ladder.some((x) => x.name === r)) return sendError(res, 404, 'unknown rendition');
    const last = channel.store.lastSequenceOf(b);
    const entries: Entry[] = last === undefined ? [] : channel.store.entries(r, b.firstSequence, last);
    const text = mediaPlaylist({
      entries,
      segmentDurationS: b.segmentDurationS,
      uri: (seq) => playlistSegmentUri.recording(r, seq),
      ended: true,
      vod: true,
    });
    sendText(res, counters, text, TYPES.m3u8, cache);
  }

  #master(b: Broadcast, uri: (r: string) => string): string {
    return masterPlaylist({ ladder: b.ladder, fps: b.fps, hasAudio: b.hasAudio, uri });
  }

  #segment(
    req: Request,
    res: Response,
    channel: SourceChannel,
    counters: ChannelCounters,
    rendition: string,
    file: string,
  ): void {
    const m = /^(0|[1-9]\d{0,14})\.(ts|json)$/.exec(file); // one URL per segment: no leading zeros
    if (!isRenditionName(rendition) || !m) return sendError(res, 404, 'not found');
    const seq = Number(m[1]);
    const entry = channel.store.entry(rendition, seq);
    if (entry?.kind !== 'segment') return sendError(res, 404, 'no such segment');
    if (m[2] === 'json') return sendJson(res, counters, entry.attestation, IMMUTABLE, 'attestation');
    sendSegmentFile(
      req,
      res,
      counters,
      channel.store.segmentPath(rendition, seq),
      entry.attestation.byteLength,
      (stream) => this.#guard.trackFile(req, stream),
    );
  }

  #attestationRun(
    req: Request,
    res: Response,
    channel: SourceChannel,
    counters: ChannelCounters,
    rendition: string,
  ): void {
    const from = Number(req.query.from ?? 0);
    const limit = Number(req.query.limit ?? 100);
    if (!isRenditionName(rendition)) return sendError(res, 404, 'unknown rendition');
    if (!Number.isSafeInteger(from) || from < 0)
      return sendError(res, 400, 'from must be a non-negative integer');
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_ATTESTATION_BATCH)
      return sendError(res, 400, `limit must be an integer from 1 to ${MAX_ATTESTATION_BATCH}`);
    const list = channel.store
      .entries(rendition, from, from + limit - 1)
      .flatMap((e) => (e.kind === 'segment' ? [e.attestation] : []));
    sendJson(res, counters, { rendition, from, attestations: list }, 'no-cache', 'attestation');
  }
}
