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
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import express, { type Request, type Response, type NextFunction } from 'express';
import createDebug from 'debug';
import { isChannelId, isRenditionName } from '../protocol/index.ts';
import type { SourceChannel } from './channel.ts';
import { ConfigError } from './config.ts';
import { masterPlaylist, mediaPlaylist } from './playlists.ts';
import { addressBucket } from './rtmp/server.ts';
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

/**
 * How the origin protects the process it runs in. Every connection costs a file descriptor (two while
 * it is sent a segment), and publication needs descriptors too (segment files, indexes, ffmpeg's pipes,
 * file watchers, the tracker link): the origin keeps its connections to what the descriptor limit
 * leaves after a reserve for publication, so no number of clients can starve publication.
 */
export interface OriginOptions {
  /** Base URL that players and peers are told to fetch from (CDN / reverse proxy); default: as bound. */
  publicUrl: string | undefined;
  /** Value of Access-Control-Allow-Origin (segments are public and signed). */
  corsOrigin: string;
  /**
   * Connections served at once. `'auto'`: (soft descriptor limit − `reservedFds`) / 2, at most 16 384.
   * At the cap a new connection closes the longest-idle one (keep-alive, or not sent a request yet), as
   * nginx reuses connections; when none is idle it is refused.
   */
  maxConnections: number | 'auto';
  /**
   * Connections one client address (an IPv4 address, an IPv6 /64) may hold. `'auto'`: a quarter of
   * `maxConnections` (at least 8); 0: no per-address cap (behind a CDN or reverse proxy, whose own
   * address every request comes from).
   */
  maxConnectionsPerAddress: number | 'auto';
  /** Descriptors left for publication and the rest of the process when the cap is derived. */
  reservedFds: number;
  /**
   * How long an idle keep-alive connection is kept. Longer than clients keep theirs (browsers, undici,
   * load balancers' 60 s), so a client never reuses a connection the origin is closing.
   */
  keepAliveTimeoutMs: number;
  /** A request's headers must arrive within this (also a new connection's first request): slowloris. */
  headersTimeoutMs: number;
  /** A whole request must arrive within this. */
  requestTimeoutMs: number;
  /** A connection with a request open and no byte moving either way for this long is closed (slow readers). */
  idleTimeoutMs: number;
  /** Requests pipelined on one connection before it is closed (they are answered one at a time). */
  maxPipelinedRequests: number;
}

export const DEFAULT_ORIGIN: OriginOptions = {
  publicUrl: undefined,
  corsOrigin: '*',
  maxConnections: 'auto',
  maxConnectionsPerAddress: 'auto',
  reservedFds: 256,
  keepAliveTimeoutMs: 65_000,
  headersTimeoutMs: 30_000,
  requestTimeoutMs: 60_000,
  idleTimeoutMs: 60_000,
  maxPipelinedRequests: 16,
};

/** Descriptors a connection may hold: its socket and the segment file it is being sent. */
const FDS_PER_CONNECTION = 2;
const MAX_AUTO_CONNECTIONS = 16_384;

/** The limits in force once the origin listens. */
export interface OriginLimits {
  maxConnections: number;
  /** 0: none. */
  maxConnectionsPerAddress: number;
  /** The process's soft RLIMIT_NOFILE when it was read (undefined where it cannot be read). */
  descriptorLimit: number | undefined;
}

/** What the origin did with connections (also under `connections` in `GET /stats`). */
export interface ConnectionStats {
  open: number;
  /** Turned away at the cap with none idle to close (total or per address). */
  refused: number;
  /** Idle connections closed to make room for a new one. */
  evicted: number;
  /** Connections closed for sending more pipelined requests than allowed. */
  pipelineOverflows: number;
  /** Most segment files open at once. */
  openFilesPeak: number;
}

/** The process's RLIMIT_NOFILE (Linux: /proc/self/limits; elsewhere `ulimit -n`); undefined if unknown. */
export function descriptorLimit(): { soft: number; hard: number } | undefined {
  const num = (v: string): number => (v === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(v));
  try {
    const line = fs
      .readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const m = line && /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(line);
    if (m) return { soft: num(m[1]!), hard: num(m[2]!) };
  } catch {
    /* not Linux */
  }
  const r = spawnSync('sh', ['-c', 'ulimit -Sn; ulimit -Hn'], { encoding: 'utf8' });
  const [soft, hard] = (r.stdout ?? '').trim().split('\n');
  if (r.status === 0 && soft && hard && /^(\d+|unlimited)$/.test(soft) && /^(\d+|unlimited)$/.test(hard))
    return { soft: num(soft), hard: num(hard) };
  return undefined;
}

/**
 * Raises the soft descriptor limit to the hard one (no privilege needed). Node does this itself at
 * start-up; this covers runtimes and embedders that do not. Returns the limit in force afterwards.
 */
export function raiseDescriptorLimit(): { soft: number; hard: number } | undefined {
  const before = descriptorLimit();
  if (!before || before.soft >= before.hard || before.hard === Number.MAX_SAFE_INTEGER) return before;
  const r = spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${before.hard}:${before.hard}`], {
    encoding: 'utf8',
  });
  if (r.status !== 0) debug('could not raise the descriptor limit: %s', r.stderr || r.error?.message);
  return descriptorLimit();
}

/** One client connection as the origin accounts for it. */
interface Conn {
  readonly socket: Socket;
  readonly bucket: string;
  /** Requests received and not yet answered (pipelined ones wait for the one before). */
  pending: number;
  /** The request being answered finishes: the next pipelined one may start. */
  turn: Promise<void>;
  /** Closes when the segment file being sent is closed. */
  file: Promise<void> | undefined;
}

export class Origin {
  readonly app: express.Express;
  readonly #channels = new Map<string, SourceChannel>();
  readonly #counters = new Map<string, ChannelCounters>();
  readonly #opts: OriginOptions;
  #server: http.Server | undefined;
  #publicUrl: string | undefined;
  #limits: OriginLimits | undefined;
  /** Every open connection. */
  readonly #conns = new Map<Socket, Conn>();
  /** Connections with no request open, longest idle first (a Set keeps insertion order). */
  readonly #idle = new Set<Conn>();
  readonly #perBucket = new Map<string, number>();
  readonly #stats: ConnectionStats = {
    open: 0,
    refused: 0,
    evicted: 0,
    pipelineOverflows: 0,
    openFilesPeak: 0,
  };
  #openFiles = 0;
  #lastRequestAtMs = 0;

  constructor(opts: Partial<OriginOptions> = {}) {
    const o: OriginOptions = { ...DEFAULT_ORIGIN, ...opts };
    validateOptions(o);
    this.#opts = o;
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
        this.#error(res, 405, 'method not allowed');
        return;
      }
      next();
    });
    app.get('/', (_req, res) =>
      this.#json(res, undefined, { channels: [...this.#channels.keys()] }, 'no-cache'),
    );
    app.get('/stats', (_req, res) =>
      this.#json(
        res,
        undefined,
        { channels: this.counters(), connections: this.connectionStats() },
        'no-cache',
      ),
    );
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

  /** The connection caps in force (undefined until the origin listens). */
  get limits(): OriginLimits | undefined {
    return this.#limits && { ...this.#limits };
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
    return { ...this.#stats, open: this.#conns.size };
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

  /**
   * Listens; the connection caps are fixed now from the descriptor limit in force. Throws a ConfigError
   * when the limit leaves no room for connections next to publication's reserve.
   */
  listen(port: number, host = '127.0.0.1'): Promise<http.Server> {
    if (this.#server) return Promise.reject(new Error('origin is already listening'));
    let limits: OriginLimits;
    try {
      limits = this.#deriveLimits();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const o = this.#opts;
    return new Promise((resolve, reject) => {
      const server = http.createServer(
        {
          keepAliveTimeout: o.keepAliveTimeoutMs,
          headersTimeout: o.headersTimeoutMs,
          requestTimeout: o.requestTimeoutMs,
          // How often headers and request timeouts are checked (Node's default: every 30 s).
          connectionsCheckingInterval: Math.min(1000, o.headersTimeoutMs),
        },
        (req, res) => this.#admit(req, res),
      );
      // Socket inactivity: fresh connections and requests whose response does not move (slow readers).
      server.timeout = o.idleTimeoutMs;
      server.on('connection', (socket: Socket) => this.#onConnection(socket));
      this.#limits = limits;
      server.once('error', (err) => {
        this.#limits = undefined;
        reject(err);
      });
      server.listen(port, host, () => {
        server.removeAllListeners('error');
        server.on('error', (err) => debug('server error: %s', err.message));
        this.#server = server;
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
   * `graceMs`, then closes the rest. Idempotent.
   */
  close(graceMs = 0): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      server.closeIdleConnections();
      // Also those that never sent a request (Node counts them as active).
      for (const conn of [...this.#idle]) conn.socket.destroy();
      if (graceMs <= 0) server.closeAllConnections();
    });
  }

  // ---- connections ----

  #deriveLimits(): OriginLimits {
    const o = this.#opts;
    const fds = descriptorLimit();
    const room = fds ? Math.floor((fds.soft - o.reservedFds) / FDS_PER_CONNECTION) : undefined;
    let max: number;
    if (o.maxConnections === 'auto') {
      if (room !== undefined && room < 1)
        throw new ConfigError(
          `the descriptor limit (${fds!.soft}) leaves no room for origin connections after the ${o.reservedFds} ` +
            'kept for publication: raise it (ulimit -n, systemd LimitNOFILE=)',
        );
      max = Math.min(MAX_AUTO_CONNECTIONS, room ?? 1024);
    } else {
      if (room !== undefined && o.maxConnections > room)
        throw new ConfigError(
          `${o.maxConnections} origin connections need up to ${o.maxConnections * FDS_PER_CONNECTION + o.reservedFds} ` +
            `descriptors with publication's reserve, but the limit is ${fds!.soft}: raise it (ulimit -n) or lower the cap`,
        );
      max = o.maxConnections;
    }
    const perAddress =
      o.maxConnectionsPerAddress === 'auto'
        ? Math.min(max, Math.max(8, Math.floor(max / 4)))
        : Math.min(max, o.maxConnectionsPerAddress);
    return { maxConnections: max, maxConnectionsPerAddress: perAddress, descriptorLimit: fds?.soft };
  }

  #onConnection(socket: Socket): void {
    const limits = this.#limits;
    if (!limits) {
      socket.destroy();
      return;
    }
    const bucket = addressBucket(socket.remoteAddress);
    // Per address first: an address at its cap makes room among its own idle connections only.
    const perAddress = limits.maxConnectionsPerAddress;
    if (perAddress > 0 && (this.#perBucket.get(bucket) ?? 0) >= perAddress && !this.#evictIdle(bucket)) {
      this.#refuse(socket, `${bucket} is at its ${perAddress} connections`);
      return;
    }
    if (this.#conns.size >= limits.maxConnections && !this.#evictIdle(undefined)) {
      this.#refuse(socket, `all ${limits.maxConnections} connections are busy`);
      return;
    }
    const conn: Conn = { socket, bucket, pending: 0, turn: Promise.resolve(), file: undefined };
    this.#conns.set(socket, conn);
    this.#idle.add(conn);
    this.#perBucket.set(bucket, (this.#perBucket.get(bucket) ?? 0) + 1);
    socket.once('close', () => this.#forget(conn));
  }

  /** Drops a connection from the accounts (once, whoever notices first). */
  #forget(conn: Conn): void {
    if (this.#conns.get(conn.socket) !== conn) return;
    this.#conns.delete(conn.socket);
    this.#idle.delete(conn);
    const n = (this.#perBucket.get(conn.bucket) ?? 1) - 1;
    if (n > 0) this.#perBucket.set(conn.bucket, n);
    else this.#perBucket.delete(conn.bucket);
  }

  /** Closes the longest-idle connection (of `bucket`, or of anyone); false when none is idle. */
  #evictIdle(bucket: string | undefined): boolean {
    for (const conn of this.#idle) {
      if (bucket !== undefined && conn.bucket !== bucket) continue;
      this.#forget(conn);
      conn.socket.destroy();
      this.#stats.evicted++;
      return true;
    }
    return false;
  }

  #refuse(socket: Socket, why: string): void {
    this.#stats.refused++;
    debug('refused a connection from %s: %s', socket.remoteAddress, why);
    socket.destroy();
  }

  /**
   * Answers the requests of one connection one at a time: a client that pipelines requests holds at
   * most one segment file open, like everyone else.
   */
  #admit(req: http.IncomingMessage, res: http.ServerResponse): void {
    const conn = this.#conns.get(req.socket);
    if (!conn) {
      // Evicted or refused while its request was being parsed.
      res.destroy();
      return;
    }
    if (conn.pending >= this.#opts.maxPipelinedRequests) {
      this.#stats.pipelineOverflows++;
      req.socket.destroy();
      return;
    }
    conn.pending++;
    this.#idle.delete(conn);
    const previous = conn.turn;
    let done!: () => void;
    conn.turn = new Promise<void>((resolve) => (done = resolve));
    res.once('close', () => {
      // The next request starts once this one's segment file is closed too (fs closes it a moment later).
      const file = conn.file ?? Promise.resolve();
      conn.file = undefined;
      void file.then(() => {
        conn.pending--;
        done();
        // Idle again: the newest idle connection, last in line to be closed under pressure.
        if (conn.pending === 0 && this.#conns.get(conn.socket) === conn) this.#idle.add(conn);
      });
    });
    void previous.then(() => {
      if (!res.destroyed) this.app(req, res);
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
    this.#openFiles++;
    this.#stats.openFilesPeak = Math.max(this.#stats.openFilesPeak, this.#openFiles);
    const conn = this.#conns.get(req.socket);
    const closed = new Promise<void>((resolve) =>
      stream.once('close', () => {
        this.#openFiles--;
        resolve();
      }),
    );
    if (conn) conn.file = closed;
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

function validateOptions(o: OriginOptions): void {
  const int = (name: string, v: number, min: number) => {
    if (!Number.isSafeInteger(v) || v < min)
      throw new ConfigError(`origin ${name} must be an integer of at least ${min} (got ${v})`);
  };
  if (o.maxConnections !== 'auto') int('maxConnections', o.maxConnections, 1);
  if (o.maxConnectionsPerAddress !== 'auto') int('maxConnectionsPerAddress', o.maxConnectionsPerAddress, 0);
  if (
    typeof o.maxConnections === 'number' &&
    typeof o.maxConnectionsPerAddress === 'number' &&
    o.maxConnectionsPerAddress > o.maxConnections
  )
    throw new ConfigError('origin maxConnectionsPerAddress must not exceed maxConnections');
  int('reservedFds', o.reservedFds, 0);
  int('keepAliveTimeoutMs', o.keepAliveTimeoutMs, 1);
  int('headersTimeoutMs', o.headersTimeoutMs, 1);
  int('requestTimeoutMs', o.requestTimeoutMs, 1);
  int('idleTimeoutMs', o.idleTimeoutMs, 1);
  int('maxPipelinedRequests', o.maxPipelinedRequests, 1);
  if (o.headersTimeoutMs > o.requestTimeoutMs)
    throw new ConfigError('origin headersTimeoutMs must not exceed requestTimeoutMs');
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
