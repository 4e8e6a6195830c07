/**
 * The origin: serves playlists, segments, attestations and channel metadata over HTTP (express),
 * with correct content types, cache headers, CORS and byte ranges, and counts every byte it sends.
 *
 * URL layout (all under `/channels/<id>/`):
 *   channel.json                          metadata, public key, live and recorded playlists
 *   live/master.m3u8, live/<r>.m3u8       live (sliding window; ENDLIST once the broadcast ended)
 *   recordings/<b>/master.m3u8, …/<r>.m3u8  a finished broadcast (VOD)
 *   segments/<r>/<seq>.ts                 a segment (immutable)
 *   segments/<r>/<seq>.json               its attestation (immutable)
 *   attestations/<r>?from=N&limit=M       a run of attestations (for peers catching up)
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Request, type Response, type NextFunction } from 'express';
import createDebug from 'debug';
import { isChannelId, isRenditionName } from '../protocol/index.ts';
import type { SourceChannel } from './channel.ts';
import { masterPlaylist, mediaPlaylist } from './playlists.ts';
import { BROADCAST_ID_PATTERN, type Broadcast, type Entry } from './store.ts';

const debug = createDebug('peertv:source:origin');

export type ByteKind = 'playlist' | 'segment' | 'attestation' | 'metadata';
export type ChannelCounters = Record<ByteKind, { bytes: number; requests: number }>;

const newCounters = (): ChannelCounters => ({
  playlist: { bytes: 0, requests: 0 },
  segment: { bytes: 0, requests: 0 },
  attestation: { bytes: 0, requests: 0 },
  metadata: { bytes: 0, requests: 0 },
});

const TYPES = {
  m3u8: 'application/vnd.apple.mpegurl',
  ts: 'video/mp2t',
  json: 'application/json; charset=utf-8',
} as const;

const IMMUTABLE = 'public, max-age=31536000, immutable';
const MAX_ATTESTATION_BATCH = 500;

export interface OriginOptions {
  /** Base URL that players and peers are told to fetch from (CDN / reverse proxy); default: as bound. */
  publicUrl?: string;
  /** Value of Access-Control-Allow-Origin; default `*` (segments are public and signed). */
  corsOrigin?: string;
}

export class Origin {
  readonly app: express.Express;
  readonly #channels = new Map<string, SourceChannel>();
  readonly #counters = new Map<string, ChannelCounters>();
  #server: http.Server | undefined;
  #publicUrl: string | undefined;
  readonly #cors: string;

  constructor(opts: OriginOptions = {}) {
    this.#publicUrl = opts.publicUrl?.replace(/\/+$/, '');
    this.#cors = opts.corsOrigin ?? '*';
    const app = express();
    app.disable('x-powered-by');
    app.set('etag', false);
    app.use((req, res, next) => {
      res.setHeader('Access-Control-Allow-Origin', this.#cors);
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
        this.#error(res, 405, 'method not allowed');
        return;
      }
      next();
    });
    app.get('/', (_req, res) =>
      this.#json(res, undefined, { channels: [...this.#channels.keys()] }, 'no-cache'),
    );
    app.get('/stats', (_req, res) => this.#json(res, undefined, { channels: this.counters() }, 'no-cache'));
    app.use('/channels', (req, res, next) => this.#route(req, res, next));
    app.use((_req: Request, res: Response) => this.#error(res, 404, 'not found'));
    app.use((err: Error, _req: Request, res: Response, _next: NextFunction) => {
      debug('request failed: %s', err.message);
      if (!res.headersSent) this.#error(res, 500, 'internal error');
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

  channelInfo(channel: SourceChannel): Record<string, unknown> {
    const base = `${this.publicUrl}/channels/${channel.settings.id}`;
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
      live: channel.status === 'idle' ? null : { master: `${base}/live/master.m3u8`, broadcast: b?.id },
      recordings: channel.store
        .broadcasts()
        .filter((r) => r.endedAtMs !== null)
        .map((r) => ({
          id: r.id,
          title: r.title,
          startedAt: new Date(r.startedAtMs).toISOString(),
          endedAt: new Date(r.endedAtMs!).toISOString(),
          master: `${base}/recordings/${r.id}/master.m3u8`,
        })),
    };
  }

  listen(port: number, host = '127.0.0.1'): Promise<http.Server> {
    return new Promise((resolve, reject) => {
      const server = http.createServer(this.app);
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        this.#server = server;
        resolve(server);
      });
    });
  }

  close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return Promise.resolve();
    return new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  // ---- routing ----

  #route(req: Request, res: Response, next: NextFunction): void {
    // Raw path: reject anything encoded or relative before matching (no traversal, no surprises).
    const raw = req.path;
    if (raw.includes('%') || raw.includes('..') || raw.includes('//') || raw.includes('\\'))
      return this.#error(res, 400, 'bad path');
    const parts = raw.split('/').filter(Boolean);
    const [channelId, section, a, b, ...rest] = parts;
    if (!isChannelId(channelId)) return this.#error(res, 404, 'unknown channel');
    const channel = this.#channels.get(channelId);
    if (!channel) return this.#error(res, 404, 'unknown channel');
    const counters = this.#counters.get(channelId)!;

    if (section === 'channel.json' && a === undefined)
      return this.#json(res, counters, this.channelInfo(channel), 'no-cache', 'metadata');
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
    if (!b) return this.#error(res, 404, 'channel offline: nothing broadcast yet');
    const live = b.endedAtMs === null;
    const cache = `public, max-age=${Math.max(1, Math.floor(b.segmentDurationS / 2))}`;
    if (file === 'master.m3u8')
      return this.#text(
        res,
        counters,
        this.#master(b, (r) => `${r}.m3u8`),
        TYPES.m3u8,
        cache,
      );
    const r = /^([a-z0-9][a-z0-9_-]*)\.m3u8$/.exec(file)?.[1];
    if (!r || !b.ladder.some((x) => x.name === r)) return this.#error(res, 404, 'unknown rendition');
    const last = channel.store.lastSequenceOf(b);
    if (last === undefined) return this.#error(res, 404, 'broadcast starting: no segment yet');
    const window = channel.settings.playlistWindow;
    const entries = channel.store.entries(r, Math.max(b.firstSequence, last - window + 1), last);
    const text = mediaPlaylist({
      entries,
      segmentDurationS: b.segmentDurationS,
      uri: (seq) => `../segments/${r}/${seq}.ts`,
      ended: !live,
      vod: false,
    });
    this.#text(res, counters, text, TYPES.m3u8, live ? cache : 'public, max-age=60');
  }

  #recordingPlaylist(
    res: Response,
    channel: SourceChannel,
    counters: ChannelCounters,
    id: string,
    file: string,
  ): void {
    const b = BROADCAST_ID_PATTERN.test(id) ? channel.store.broadcast(id) : undefined;
    if (!b) return this.#error(res, 404, 'unknown recording');
    if (b.endedAtMs === null)
      return this.#error(res, 409, 'broadcast still live: its recording is not final yet');
    const cache = 'public, max-age=3600';
    if (file === 'master.m3u8')
      return this.#text(
        res,
        counters,
        this.#master(b, (r) => `${r}.m3u8`),
        TYPES.m3u8,
        cache,
      );
    const r = /^([a-z0-9][a-z0-9_-]*)\.m3u8$/.exec(file)?.[1];
    if (!r || !b.ladder.some((x) => x.name === r)) return this.#error(res, 404, 'unknown rendition');
    const last = channel.store.lastSequenceOf(b);
    const entries: Entry[] = last === undefined ? [] : channel.store.entries(r, b.firstSequence, last);
    const text = mediaPlaylist({
      entries,
      segmentDurationS: b.segmentDurationS,
      uri: (seq) => `../../segments/${r}/${seq}.ts`,
      ended: true,
      vod: true,
    });
    this.#text(res, counters, text, TYPES.m3u8, cache);
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
    if (!isRenditionName(rendition) || !m) return this.#error(res, 404, 'not found');
    const seq = Number(m[1]);
    const entry = channel.store.entry(rendition, seq);
    if (entry?.kind !== 'segment') return this.#error(res, 404, 'no such segment');
    if (m[2] === 'json') return this.#json(res, counters, entry.attestation, IMMUTABLE, 'attestation');
    this.#sendFile(
      req,
      res,
      counters,
      channel.store.segmentPath(rendition, seq),
      entry.attestation.byteLength,
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
    if (!isRenditionName(rendition)) return this.#error(res, 404, 'unknown rendition');
    if (!Number.isSafeInteger(from) || from < 0)
      return this.#error(res, 400, 'from must be a non-negative integer');
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_ATTESTATION_BATCH)
      return this.#error(res, 400, `limit must be an integer from 1 to ${MAX_ATTESTATION_BATCH}`);
    const list = channel.store
      .entries(rendition, from, from + limit - 1)
      .flatMap((e) => (e.kind === 'segment' ? [e.attestation] : []));
    this.#json(res, counters, { rendition, from, attestations: list }, 'no-cache', 'attestation');
  }

  #sendFile(req: Request, res: Response, counters: ChannelCounters, file: string, size: number): void {
    res.setHeader('Content-Type', TYPES.ts);
    res.setHeader('Cache-Control', IMMUTABLE);
    res.setHeader('Accept-Ranges', 'bytes');
    let start = 0;
    let end = size - 1;
    const range = req.headers.range;
    if (range !== undefined) {
      const parsed = parseRange(range, size);
      if (parsed === 'unsatisfiable') {
        res.setHeader('Content-Range', `bytes */${size}`);
        return this.#error(res, 416, 'range not satisfiable');
      }
      if (parsed) {
        [start, end] = parsed;
        res.status(206);
        res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
      }
    }
    res.setHeader('Content-Length', String(end - start + 1));
    counters.segment.requests++;
    if (req.method === 'HEAD') return void res.end();
    const stream = fs.createReadStream(file, { start, end });
    stream.on('data', (chunk) => (counters.segment.bytes += chunk.length));
    stream.on('error', (err) => {
      debug('segment read failed: %s', err.message);
      res.destroy(err);
    });
    res.on('close', () => stream.destroy());
    stream.pipe(res);
  }

  #text(res: Response, counters: ChannelCounters, text: string, type: string, cache: string): void {
    const body = Buffer.from(text, 'utf8');
    counters.playlist.requests++;
    res.setHeader('Content-Type', type);
    res.setHeader('Cache-Control', cache);
    res.setHeader('Content-Length', String(body.length));
    if (res.req.method === 'HEAD') return void res.end();
    counters.playlist.bytes += body.length;
    res.end(body);
  }

  #json(
    res: Response,
    counters: ChannelCounters | undefined,
    value: unknown,
    cache: string,
    kind: ByteKind = 'metadata',
  ): void {
    const body = Buffer.from(JSON.stringify(value), 'utf8');
    res.setHeader('Content-Type', TYPES.json);
    res.setHeader('Cache-Control', cache);
    res.setHeader('Content-Length', String(body.length));
    if (counters) counters[kind].requests++;
    if (res.req.method === 'HEAD') return void res.end();
    if (counters) counters[kind].bytes += body.length;
    res.end(body);
  }

  #error(res: Response, status: number, message: string): void {
    const body = JSON.stringify({ error: message });
    res.status(status);
    res.setHeader('Content-Type', TYPES.json);
    res.setHeader('Cache-Control', 'no-store');
    res.end(body);
  }
}

/** One `bytes=` range (multi-range requests get the whole body, as RFC 9110 allows). */
export function parseRange(header: string, size: number): [number, number] | 'unsatisfiable' | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    return [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return [start, end];
}
