/**
 * The tracker: channel directory, peer sessions, signaling relay, overlay policy, stats and metrics.
 * express for REST and pages, socket.io for sessions. It never touches media bytes.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import { Server as IoServer, type Socket } from 'socket.io';
import createDebug from 'debug';
import {
  channelIdSchema,
  channelRegistrationSchema,
  describeIssue,
  joinRequestSchema,
  originCountersSchema,
  parseAttestation,
  peerComplaintSchema,
  peerReportSchema,
  signalRequestSchema,
  TRACKER_PROTOCOL_VERSION,
  TypedEmitter,
  watchRequestSchema,
  type Ack,
  type ChannelInfo,
  type ChannelRegistration,
  type ChannelStats,
  type ClientToServerEvents,
  type IceServer,
  type ServerToClientEvents,
  type TrackerErrorCode,
  type z,
} from '../protocol/index.ts';
import { TrackerMetrics } from './metrics.ts';
import { RandomPolicy, type OverlayPolicy, type PolicyContext } from './policy.ts';
import { ChannelOwnership, DEFAULT_OWNERSHIP, type OwnershipOptions } from './ownership.ts';
import { PushQueue } from './push-queue.ts';
import { KeyedBuckets, TokenBucket } from './rate-limit.ts';
import { Refusal } from './refusal.ts';
import { StaticFiles } from './static-files.ts';
import { DEFAULT_REPUTATION, Reputation, type ReputationOptions } from './reputation.ts';
import { DEFAULT_STATS, StatsKeeper, type StatsOptions } from './stats.ts';
import { MemoryTrackerStore, type ChannelRecord, type PeerRecord, type TrackerStore } from './store.ts';

const debug = createDebug('peertv:tracker');
/** Samples sent with each stats push to dashboards (5 minutes at the default interval); REST has all. */
const PUSHED_HISTORY = 150;

export interface TrackerOptions {
  /** ICE servers handed to peers (STUN, TURN). Never public ones in tests. */
  iceServers: IceServer[];
  /**
   * TURN relays (coturn with `use-auth-secret`): each peer gets time-limited credentials by the TURN
   * REST API scheme (username `<expiry>:<peerId>`, password base64(HMAC-SHA1(secret, username))), so
   * no long-term password reaches a browser.
   */
  turn: { urls: string[]; secret: string; ttlS: number } | undefined;
  /** Origins allowed by CORS (REST and socket.io); `['*']` allows any. */
  corsOrigins: string[];
  /** Largest socket.io message accepted. */
  maxHttpBufferSize: number;
  /** Events per second per socket, and burst. */
  socketEventRate: number;
  socketEventBurst: number;
  /** New connections per second per IP, and burst (0 = unlimited). */
  ipConnectRate: number;
  ipConnectBurst: number;
  /** Concurrent connections per IP (0 = unlimited). */
  maxConnectionsPerIp: number;
  maxPeers: number;
  /** Neighbours recommended per peer, and the cap on links per peer. */
  targetNeighbours: number;
  maxNeighbours: number;
  reportIntervalMs: number;
  /** A peer silent for this long is dropped. */
  peerTimeoutMs: number;
  /** How often first tiers and neighbour counts are revisited. */
  rebalanceIntervalMs: number;
  statsIntervalMs: number;
  stats: StatsOptions;
  /** Directory with the web player's files, served at `/` (issue "Web player"). */
  playerDir: string | undefined;
  /**
   * Where durable state lives (channel ownership pins: `<dataDir>/tracker/pins.json`). Without it,
   * pins live in memory only and a restarted tracker forgets which key owns which channel.
   */
  dataDir: string | undefined;
  /** Signed registrations: clock skew allowed, claims of new channel ids per address, channels at most. */
  ownership: OwnershipOptions;
  /** A channel that never went live is forgotten this long after its last registration (once its source is gone). */
  idleChannelTtlMs: number;
  /** Rendition switches a peer may make: per minute, and at once (more are applied later). */
  renditionSwitchesPerMinute: number;
  renditionSwitchBurst: number;
  /** Complaints, quarantine and penalties of addresses. */
  reputation: ReputationOptions;
  /** Neighbour pushes to one peer within this window reach it as one message. */
  pushCoalesceMs: number;
}

/** Where a tracker with `dataDir` keeps its channel pins. */
export const pinFilePath = (dataDir: string): string => path.join(dataDir, 'tracker', 'pins.json');

export const DEFAULT_TRACKER: TrackerOptions = {
  iceServers: [],
  turn: undefined,
  corsOrigins: ['*'],
  maxHttpBufferSize: 64 * 1024,
  socketEventRate: 20,
  socketEventBurst: 60,
  ipConnectRate: 20,
  ipConnectBurst: 100,
  maxConnectionsPerIp: 200,
  maxPeers: 50_000,
  targetNeighbours: 6,
  maxNeighbours: 12,
  reportIntervalMs: 5000,
  peerTimeoutMs: 20_000,
  rebalanceIntervalMs: 5000,
  statsIntervalMs: 2000,
  stats: DEFAULT_STATS,
  playerDir: undefined,
  dataDir: undefined,
  ownership: DEFAULT_OWNERSHIP,
  idleChannelTtlMs: 10 * 60_000,
  renditionSwitchesPerMinute: 6,
  renditionSwitchBurst: 3,
  reputation: DEFAULT_REPUTATION,
  pushCoalesceMs: 20,
};

export type TrackerEvents = {
  'channel-registered': (id: string) => void;
  /** A channel that never went live expired. */
  'channel-expired': (id: string) => void;
  /** Several neighbours complained about a peer: it is introduced to no one any more. */
  'peer-quarantined': (info: { id: string; channel: string; ip: string; reporters: string[] }) => void;
  'peer-joined': (peer: PeerRecord) => void;
  'peer-left': (info: { id: string; channel: string; reason: 'leave' | 'disconnect' | 'timeout' }) => void;
  rejected: (info: { event: string; code: TrackerErrorCode; message: string; ip: string }) => void;
};

interface SocketData {
  peerId?: string;
  channel?: string;
  rendition?: string;
  sourceOf?: string;
  /** Set while a join is being processed (a second join meanwhile is refused). */
  joining?: boolean;
  ip: string;
  bucket: TokenBucket;
  /** Rendition switches (each one rewires the peer's neighbourhood). */
  switches: TokenBucket;
  strikes: number;
  strikesSince: number;
}

type IoSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

/** Directory changes are pushed to watchers at most this often, batched. */
const DIRECTORY_PUSH_MS = 250;

/** HTTP status of a refused REST registration. */
const REFUSAL_STATUS: Partial<Record<TrackerErrorCode, number>> = {
  unauthorized: 403,
  'registration-expired': 409,
  'registration-replayed': 409,
  'rate-limited': 429,
  'tracker-full': 503,
};

/** Events a client may send; anything else is refused (and counted against its rate limit). */
const CLIENT_EVENTS = new Set<string>([
  'join',
  'report',
  'signal',
  'leave',
  'report-peer',
  'source:register',
  'source:attestation',
  'source:counters',
  'watch',
]);

/** Answers an event's acknowledgement (its last argument, when a function); a broken ack is ignored. */
function replyTo(args: readonly unknown[], ack: Ack<object>): void {
  const fn = args.at(-1);
  if (typeof fn !== 'function') return;
  try {
    (fn as (a: Ack<object>) => void)(ack);
  } catch {
    /* a client's broken ack must not hurt the tracker */
  }
}

export class Tracker extends TypedEmitter<TrackerEvents> {
  readonly opts: TrackerOptions;
  readonly store: TrackerStore;
  readonly policy: OverlayPolicy;
  readonly stats: StatsKeeper;
  readonly metrics: TrackerMetrics;
  readonly ownership: ChannelOwnership;
  readonly reputation: Reputation;
  readonly app: express.Express;
  readonly server: http.Server;
  readonly io: IoServer<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
  readonly #ipConnects: KeyedBuckets;
  readonly #ipConnections = new Map<string, number>();
  readonly #sockets = new Map<string, IoSocket>(); // peerId → socket
  /** Channel id → its registered source connections. */
  readonly #sources = new Map<string, Set<IoSocket>>();
  readonly #pushes: PushQueue;
  /** Channels whose directory entry changed since the last directory push (coalesced). */
  readonly #directoryChanged = new Set<string>();
  #directoryTimer: NodeJS.Timeout | undefined;
  readonly #timers: NodeJS.Timeout[] = [];
  #destroyed = false;
  readonly #startedAt = Date.now();

  constructor(
    opts: Partial<TrackerOptions> = {},
    deps: { store?: TrackerStore; policy?: OverlayPolicy } = {},
  ) {
    super();
    this.opts = { ...DEFAULT_TRACKER, ...opts };
    const o = this.opts;
    if (o.targetNeighbours > o.maxNeighbours)
      throw new RangeError('targetNeighbours must not exceed maxNeighbours');
    if (o.peerTimeoutMs <= o.reportIntervalMs)
      throw new RangeError('peerTimeoutMs must exceed reportIntervalMs');
    if (o.turn && (o.turn.secret.length < 16 || !(o.turn.ttlS >= 60 && o.turn.ttlS <= 86_400)))
      throw new RangeError('turn needs a secret of at least 16 characters and a ttlS from 60 to 86400');
    if (!(o.renditionSwitchesPerMinute > 0 && o.renditionSwitchBurst >= 1))
      throw new RangeError('rendition switch limits must be positive');
    this.store =
      deps.store ??
      new MemoryTrackerStore({
        pinFile: o.dataDir ? pinFilePath(o.dataDir) : undefined,
      });
    this.ownership = new ChannelOwnership(this.store, o.ownership);
    this.reputation = new Reputation(o.reputation);
    this.#pushes = new PushQueue((id, changes) => void this.#sendNeighbours(id, changes), o.pushCoalesceMs);
    this.policy = deps.policy ?? new RandomPolicy();
    this.stats = new StatsKeeper(this.store, o.stats);
    this.metrics = new TrackerMetrics();
    this.#ipConnects = new KeyedBuckets(o.ipConnectRate || 1e9, o.ipConnectBurst || 1e9);
    this.app = this.#buildApp();
    this.server = http.createServer(this.app);
    const anyOrigin = o.corsOrigins.includes('*');
    this.io = new IoServer(this.server, {
      maxHttpBufferSize: o.maxHttpBufferSize,
      cors: { origin: anyOrigin ? '*' : o.corsOrigins, methods: ['GET', 'POST'] },
      serveClient: true,
      pingInterval: 10_000,
      pingTimeout: 10_000,
    });
    this.io.use((socket, next) => this.#admit(socket as IoSocket, next));
    this.io.on('connection', (socket) => this.#onConnection(socket as IoSocket));
    this.#timers.push(
      setInterval(() => void this.#sweep(), Math.min(1000, o.reportIntervalMs)),
      setInterval(() => void this.#rebalanceAll(), o.rebalanceIntervalMs),
      setInterval(() => void this.#sampleStats(), o.statsIntervalMs),
    );
    for (const t of this.#timers) t.unref();
  }

  listen(port: number, host = '127.0.0.1'): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  get url(): string {
    const a = this.server.address() as AddressInfo | null;
    if (!a) throw new Error('tracker is not listening');
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const t of this.#timers) clearInterval(t);
    clearTimeout(this.#directoryTimer);
    this.#pushes.close();
    // No `disconnect` packet: clients see the transport close and reconnect with their usual backoff
    // (a server-side disconnect would read as a kick, after which clients wait longer).
    await new Promise<void>((resolve) => {
      this.io.close(() => resolve());
      this.server.closeAllConnections();
    });
    this.removeAllListeners();
  }

  // ---------------------------------------------------------------- REST and pages

  #buildApp(): express.Express {
    const app = express();
    app.disable('x-powered-by');
    const anyOrigin = this.opts.corsOrigins.includes('*');
    app.use((req, res, next) => {
      const origin = req.headers.origin;
      if (anyOrigin) res.setHeader('Access-Control-Allow-Origin', '*');
      else if (origin && this.opts.corsOrigins.includes(origin)) {
        res.setHeader('Access-Control-Allow-Origin', origin);
        res.setHeader('Vary', 'Origin');
      }
      if (req.method === 'OPTIONS') {
        res.setHeader('Access-Control-Allow-Methods', 'GET, PUT, OPTIONS');
        res.setHeader('Access-Control-Allow-Headers', 'Content-Type');
        return void res.status(204).end();
      }
      next();
    });
    app.get('/healthz', (_req, res) => void res.json({ ok: true }));
    app.get('/api/channels', async (_req, res, next) => {
      try {
        res.setHeader('Cache-Control', 'no-cache');
        res.json(await this.directory());
      } catch (err) {
        next(err);
      }
    });
    app.get('/api/channels/:id', async (req, res, next) => {
      try {
        const id = channelIdSchema.safeParse(req.params.id);
        const info = id.success ? await this.channelInfo(id.data) : undefined;
        if (!info)
          return this.#restError(
            res,
            404,
            'unknown-channel',
            'no such channel',
            'GET /api/channels/:id',
            req,
          );
        res.setHeader('Cache-Control', 'no-cache');
        res.json(info);
      } catch (err) {
        next(err);
      }
    });
    app.get('/api/channels/:id/stats', async (req, res, next) => {
      try {
        const id = channelIdSchema.safeParse(req.params.id);
        const stats = id.success ? await this.channelStats(id.data) : undefined;
        if (!stats) return this.#restError(res, 404, 'unknown-channel', 'no such channel', 'GET stats', req);
        res.json(stats);
      } catch (err) {
        next(err);
      }
    });
    // Registration over REST (same schema and secret rules as the socket event).
    app.put('/api/channels/:id', express.json({ limit: '32kb' }), async (req, res, next) => {
      try {
        const body = channelRegistrationSchema.safeParse(req.body);
        if (!body.success)
          return this.#restError(
            res,
            400,
            'invalid-input',
            describeIssue(body.error),
            'PUT /api/channels',
            req,
          );
        if (body.data.channel !== req.params.id)
          return this.#restError(
            res,
            400,
            'invalid-input',
            'channel in body differs from URL',
            'PUT /api/channels',
            req,
          );
        await this.register(body.data, req.ip ?? '?');
        res.json({ ok: true });
      } catch (err) {
        if (err instanceof Refusal)
          return this.#restError(res, REFUSAL_STATUS[err.code] ?? 400, err.code, err.message, 'PUT', req);
        next(err);
      }
    });
    app.get('/metrics', async (_req, res, next) => {
      try {
        await this.#collectMetrics();
        res.setHeader('Content-Type', this.metrics.registry.contentType);
        res.end(await this.metrics.registry.metrics());
      } catch (err) {
        next(err);
      }
    });
    // Static files go out compressed, with ETags, revalidated on each use (see static-files.ts).
    const dashboard = new StaticFiles(path.join(import.meta.dirname, 'dashboard'), { index: undefined });
    app.get('/dashboard', (req, res, next) => dashboard.send(req, res, next, 'index.html'));
    app.use('/dashboard', dashboard.handler);
    const playerDir = this.opts.playerDir;
    if (playerDir) {
      // The web player: home (directory), watch and embed pages; the page reads the channel from the URL.
      const player = new StaticFiles(playerDir);
      const page = (file: string) => (req: Request, res: Response, next: NextFunction) => {
        const id = channelIdSchema.safeParse(req.params.channel);
        if (!id.success)
          return this.#restError(res, 404, 'unknown-channel', 'no such channel', 'page', req, false);
        player.send(req, res, next, file);
      };
      app.get('/watch/:channel', page('watch.html'));
      app.get('/embed/:channel', page('embed.html'));
      app.use('/', player.handler);
    }
    app.use((req: Request, res: Response) =>
      this.#restError(res, 404, 'invalid-input', 'not found', 'http', req, false),
    );
    app.use(
      (err: Error & { type?: string; status?: number }, req: Request, res: Response, _next: NextFunction) => {
        if (err.type === 'entity.parse.failed')
          return this.#restError(res, 400, 'invalid-input', 'body is not valid JSON', 'http', req);
        if (err.type === 'entity.too.large')
          return this.#restError(res, 413, 'invalid-input', 'body too large', 'http', req);
        debug('request failed: %s', err.stack);
        this.#restError(res, 500, 'internal', 'internal error', 'http', req);
      },
    );
    return app;
  }

  #restError(
    res: Response,
    status: number,
    code: TrackerErrorCode,
    message: string,
    event: string,
    req: Request,
    count = true,
  ): void {
    if (count) this.#rejected(event, code, message, req.ip ?? '?');
    res.status(status).json({ ok: false, error: { code, message } });
  }

  #rejected(event: string, code: TrackerErrorCode, message: string, ip: string): void {
    this.metrics.invalid.inc({ event, code });
    debug('refused %s from %s: %s (%s)', event, ip, code, message);
    this.emit('rejected', { event, code, message, ip });
  }

  // ---------------------------------------------------------------- directory

  async channelInfo(id: string): Promise<ChannelInfo | undefined> {
    const rec = await this.store.getChannel(id);
    if (!rec) return undefined;
    return this.#info(id, rec);
  }

  async #info(id: string, rec: ChannelRecord): Promise<ChannelInfo> {
    const r = rec.registration;
    const current = this.stats.current(id);
    const peers = await this.store.channelPeers(id);
    return {
      id,
      title: r.title,
      status: r.status,
      originUrl: r.originUrl,
      publicKey: r.publicKey,
      segmentDurationS: r.segmentDurationS,
      renditions: r.renditions,
      livePlaylist: r.livePlaylist,
      recordings: r.recordings,
      viewers: peers.filter((p) => p.mode === 'viewer').length,
      offload: current?.offload ?? null,
      offloadWindowS: this.stats.opts.offloadWindowMs / 1000,
    };
  }

  async directory(): Promise<ChannelInfo[]> {
    const out: ChannelInfo[] = [];
    for (const [id, rec] of await this.store.listChannels()) out.push(await this.#info(id, rec));
    return out;
  }

  /** Stats of a channel with its last `historyLength` samples (all kept when not given). */
  async channelStats(id: string, historyLength?: number): Promise<ChannelStats | undefined> {
    if (!(await this.store.getChannel(id))) return undefined;
    const full = this.stats.history(id);
    const history = historyLength === undefined ? full : full.slice(-historyLength);
    const current = history.at(-1) ?? {
      at: Date.now(),
      viewers: 0,
      httpBytes: 0,
      p2pBytes: 0,
      uploadedBytes: 0,
      originSegmentBytes: null,
      offload: null,
      downloadKbps: 0,
      uploadKbps: 0,
    };
    return {
      channel: id,
      offloadWindowS: this.stats.opts.offloadWindowMs / 1000,
      current,
      history,
      overlay: await this.stats.overlay(id),
    };
  }

  /**
   * Registers or updates a channel. The registration must be signed by the channel's key; the first one
   * accepted pins the channel id to that key, durably (see {@link ChannelOwnership}).
   */
  async register(reg: ChannelRegistration, ip: string): Promise<void> {
    const { claimed } = await this.ownership.accept(reg, ip);
    const { protocolVersion: _v, signature: _s, signedAtMs: _t, ...registration } = reg;
    const existing = await this.store.getChannel(reg.channel);
    const now = Date.now();
    await this.store.putChannel(reg.channel, {
      registration,
      origin: existing?.origin ?? null,
      originBase: existing?.originBase ?? null,
      registeredAt: existing?.registeredAt ?? now,
      updatedAt: now,
    });
    if (claimed) debug('channel %s claimed by key %s from %s', reg.channel, reg.publicKey, ip);
    const info = await this.channelInfo(reg.channel);
    if (info) this.io.to(`ch:${reg.channel}`).emit('channel', info);
    this.#directoryChange(reg.channel);
    this.emit('channel-registered', reg.channel);
  }

  /** Watchers get the entries that changed, batched (never the whole directory per change). */
  #directoryChange(id: string): void {
    this.#directoryChanged.add(id);
    this.#directoryTimer ??= setTimeout(() => void this.#pushDirectory(), DIRECTORY_PUSH_MS);
  }

  async #pushDirectory(): Promise<void> {
    this.#directoryTimer = undefined;
    if (this.#destroyed) return;
    const ids = [...this.#directoryChanged];
    this.#directoryChanged.clear();
    if (!this.io.sockets.adapter.rooms.get('watchers')?.size) return;
    const upsert: ChannelInfo[] = [];
    const remove: string[] = [];
    for (const id of ids) {
      const info = await this.channelInfo(id);
      if (info) upsert.push(info);
      else remove.push(id);
    }
    this.io.to('watchers').emit('directory-update', { upsert, remove });
  }

  // ---------------------------------------------------------------- sockets

  #admit(socket: IoSocket, next: (err?: Error) => void): void {
    const ip = socket.handshake.address;
    if (this.opts.ipConnectRate > 0 && !this.#ipConnects.take(ip)) {
      this.metrics.rateLimited.inc({ event: 'connect' });
      this.#rejected('connect', 'rate-limited', 'too many connections per second', ip);
      return next(new Error('rate-limited'));
    }
    const open = this.#ipConnections.get(ip) ?? 0;
    if (this.opts.maxConnectionsPerIp > 0 && open >= this.opts.maxConnectionsPerIp) {
      this.#rejected('connect', 'rate-limited', 'too many connections from this address', ip);
      return next(new Error('rate-limited'));
    }
    this.#ipConnections.set(ip, open + 1);
    socket.data = {
      ip,
      bucket: new TokenBucket(this.opts.socketEventRate, this.opts.socketEventBurst),
      switches: new TokenBucket(this.opts.renditionSwitchesPerMinute / 60, this.opts.renditionSwitchBurst),
      strikes: 0,
      strikesSince: Date.now(),
    };
    next();
  }

  #onConnection(socket: IoSocket): void {
    this.metrics.sockets.inc();
    // Every event counts against the connection's rate limit, known or not, before anything is parsed
    // further; unknown events are refused. Persistent abuse costs the connection.
    socket.use((packet, next) => {
      const [event, ...args] = packet as unknown as [unknown, ...unknown[]];
      const name = typeof event === 'string' ? event.slice(0, 64) : '?';
      const known = CLIENT_EVENTS.has(name);
      const label = known ? name : 'unknown';
      if (!socket.data.bucket.take()) {
        this.metrics.rateLimited.inc({ event: label });
        this.#rejected(label, 'rate-limited', 'too many events', socket.data.ip);
        replyTo(args, { ok: false, error: { code: 'rate-limited', message: 'slow down' } });
        return this.#strike(socket);
      }
      if (!known) {
        this.#rejected('unknown', 'invalid-input', `unknown event ${JSON.stringify(name)}`, socket.data.ip);
        replyTo(args, { ok: false, error: { code: 'invalid-input', message: 'unknown event' } });
        return this.#strike(socket);
      }
      next();
    });
    const handle = <A extends unknown[]>(
      event: string,
      fn: (payload: unknown, ...rest: A) => Promise<object | void>,
    ) => {
      socket.on(event as keyof ClientToServerEvents, async (...args: unknown[]) => {
        const ack = typeof args.at(-1) === 'function' ? (args.pop() as (a: Ack<object>) => void) : undefined;
        const reply = (a: Ack<object>) => replyTo(ack ? [ack] : [], a);
        try {
          const result = await fn(args[0], ...(args.slice(1) as A));
          reply({ ok: true, ...(result ?? {}) });
        } catch (err) {
          if (err instanceof Refusal) {
            this.#rejected(event, err.code, err.message, socket.data.ip);
            reply({ ok: false, error: { code: err.code, message: err.message } });
          } else {
            debug('handler %s failed: %s', event, (err as Error).stack);
            reply({ ok: false, error: { code: 'internal', message: 'internal error' } });
          }
        }
      });
    };
    handle('join', (p) => this.#join(socket, p));
    handle('report', (p) => this.#report(socket, p));
    handle('signal', (p) => this.#signal(socket, p));
    handle('leave', async () => {
      await this.#removePeer(socket, 'leave');
    });
    handle('report-peer', (p) => this.#complaint(socket, p));
    handle('source:register', (p) => this.#sourceRegister(socket, p));
    handle('source:attestation', (p) => this.#sourceAttestation(socket, p));
    handle('source:counters', (p) => this.#sourceCounters(socket, p));
    handle('watch', (p) => this.#watch(socket, p));
    socket.on('disconnect', () => {
      this.metrics.sockets.dec();
      const ip = socket.data.ip;
      const n = (this.#ipConnections.get(ip) ?? 1) - 1;
      if (n <= 0) this.#ipConnections.delete(ip);
      else this.#ipConnections.set(ip, n);
      const owned = socket.data.sourceOf ? this.#sources.get(socket.data.sourceOf) : undefined;
      owned?.delete(socket);
      if (owned?.size === 0) this.#sources.delete(socket.data.sourceOf!);
      void this.#removePeer(socket, 'disconnect');
    });
  }

  /** A refused event: 200 within a minute cost the connection. */
  #strike(socket: IoSocket): void {
    const now = Date.now();
    if (now - socket.data.strikesSince > 60_000) {
      socket.data.strikes = 0;
      socket.data.strikesSince = now;
    }
    if (++socket.data.strikes > 200) socket.disconnect(true);
  }

  #parse<S extends z.ZodType>(schema: S, payload: unknown): z.infer<S> {
    const r = schema.safeParse(payload);
    if (!r.success) throw new Refusal('invalid-input', describeIssue(r.error));
    return r.data;
  }

  async #join(socket: IoSocket, payload: unknown): Promise<object> {
    if (typeof payload === 'object' && payload !== null && 'protocolVersion' in payload)
      if ((payload as { protocolVersion: unknown }).protocolVersion !== TRACKER_PROTOCOL_VERSION)
        throw new Refusal('version-mismatch', `this tracker speaks protocol ${TRACKER_PROTOCOL_VERSION}`);
    const req = this.#parse(joinRequestSchema, payload);
    if (socket.data.peerId || socket.data.joining)
      throw new Refusal('already-joined', 'this connection already joined');
    socket.data.joining = true;
    try {
      return await this.#admitPeer(socket, req);
    } finally {
      socket.data.joining = false;
    }
  }

  async #admitPeer(socket: IoSocket, req: z.infer<typeof joinRequestSchema>): Promise<object> {
    if (socket.data.sourceOf)
      throw new Refusal('already-joined', 'a source connection cannot join as a peer');
    const channel = await this.store.getChannel(req.channel);
    if (!channel) throw new Refusal('unknown-channel', `no channel ${req.channel}`);
    const renditions = channel.registration.renditions;
    const rendition =
      req.rendition ?? renditions.reduce((a, b) => (a.bandwidthBps <= b.bandwidthBps ? a : b)).name;
    if (!renditions.some((r) => r.name === rendition))
      throw new Refusal('invalid-input', `channel ${req.channel} has no rendition ${rendition}`);
    if ((await this.store.countPeers()) >= this.opts.maxPeers)
      throw new Refusal('tracker-full', 'tracker is full');
    // An address whose peer was quarantined gets new identities only slowly.
    if (!this.reputation.mayJoin(socket.data.ip)) {
      this.metrics.rateLimited.inc({ event: 'join' });
      throw new Refusal('rate-limited', 'a peer from this address misbehaved: joins are slowed down');
    }
    const now = Date.now();
    const peer: PeerRecord = {
      id: crypto.randomBytes(12).toString('base64url'),
      channel: req.channel,
      kind: req.kind,
      mode: req.mode,
      rendition,
      natType: req.natType,
      uploadKbps: req.uploadKbps,
      ip: socket.data.ip,
      joinedAt: now,
      lastSeenAt: now,
      firstTier: false,
      quarantined: false,
      report: null,
      flowsIn: {},
    };
    if (socket.disconnected) throw new Refusal('not-joined', 'connection closed while joining');
    await this.store.putPeer(peer);
    socket.data.peerId = peer.id;
    socket.data.channel = peer.channel;
    socket.data.rendition = peer.rendition;
    this.#sockets.set(peer.id, socket);
    await socket.join([`peer:${peer.id}`, `ch:${peer.channel}`, `ch:${peer.channel}:${peer.rendition}`]);
    const neighbours = await this.policy.neighboursFor(peer, [], this.opts.targetNeighbours, this.#ctx());
    for (const n of neighbours) await this.store.addLink(peer.id, n);
    await this.#updateFirstTier(peer.channel);
    for (const n of neighbours) await this.#notify(n, [peer.id], []);
    this.metrics.joins.inc({ channel: peer.channel });
    this.emit('peer-joined', peer);
    debug(
      'peer %s joined %s (%s/%s), %d neighbours',
      peer.id,
      peer.channel,
      peer.kind,
      peer.mode,
      neighbours.length,
    );
    const fresh = await this.store.getPeer(peer.id);
    return {
      peerId: peer.id,
      rendition,
      iceServers: this.iceServersFor(peer.id),
      channel: (await this.channelInfo(peer.channel))!,
      neighbours,
      firstTier: fresh?.firstTier ?? false,
      reportIntervalMs: this.opts.reportIntervalMs,
    };
  }

  /** ICE servers for one peer: the configured ones plus TURN with fresh time-limited credentials. */
  iceServersFor(peerId: string, nowMs = Date.now()): IceServer[] {
    const turn = this.opts.turn;
    if (!turn || turn.urls.length === 0) return this.opts.iceServers;
    const username = `${Math.floor(nowMs / 1000) + turn.ttlS}:${peerId}`;
    const credential = crypto.createHmac('sha1', turn.secret).update(username).digest('base64');
    return [...this.opts.iceServers, { urls: turn.urls, username, credential }];
  }

  #ctx(): PolicyContext {
    return { store: this.store, maxNeighbours: this.opts.maxNeighbours };
  }

  /** Queues a `neighbours` push (coalesced with the peer's other changes of the moment). */
  async #notify(peerId: string, add: string[], remove: string[]): Promise<void> {
    this.#pushes.add(peerId, add, remove);
  }

  async #sendNeighbours(peerId: string, changes: { add: string[]; remove: string[] }): Promise<void> {
    const p = await this.store.getPeer(peerId);
    if (!p || this.#destroyed) return;
    // An introduction whose link went meanwhile (a leave, a quarantine) is not news any more.
    const add: string[] = [];
    for (const id of changes.add) if (await this.store.hasLink(peerId, id)) add.push(id);
    this.io.to(`peer:${peerId}`).emit('neighbours', { add, remove: changes.remove, firstTier: p.firstTier });
  }

  async #updateFirstTier(channel: string): Promise<void> {
    const peers = await this.store.channelPeers(channel);
    const tier = await this.policy.firstTier(peers, this.#ctx());
    for (const p of peers) {
      const want = tier.has(p.id);
      if (p.firstTier === want) continue;
      p.firstTier = want;
      if (!(await this.store.updatePeer(p))) continue; // left meanwhile
      await this.#notify(p.id, [], []);
    }
  }

  async #report(socket: IoSocket, payload: unknown): Promise<void> {
    const report = this.#parse(peerReportSchema, payload);
    const peer = socket.data.peerId ? await this.store.getPeer(socket.data.peerId) : undefined;
    if (!peer) throw new Refusal('not-joined', 'join a channel first');
    // A switch rewires the peer's whole neighbourhood: a peer flipping renditions faster than its
    // budget keeps its old one on the tracker until the budget allows (its reports still count).
    if (report.rendition !== peer.rendition && !socket.data.switches.take()) {
      this.metrics.rateLimited.inc({ event: 'rendition-switch' });
      report.rendition = peer.rendition;
    }
    if (report.rendition !== peer.rendition) {
      const channel = await this.store.getChannel(peer.channel);
      if (!channel?.registration.renditions.some((r) => r.name === report.rendition))
        throw new Refusal('invalid-input', `no rendition ${report.rendition}`);
      await socket.leave(`ch:${peer.channel}:${peer.rendition}`);
      await socket.join(`ch:${peer.channel}:${report.rendition}`);
      peer.rendition = report.rendition;
      socket.data.rendition = report.rendition;
      // Neighbours and first tier are per rendition: start over in the new one.
      const wasFirstTier = peer.firstTier;
      peer.firstTier = false;
      if (!(await this.store.updatePeer(peer))) throw new Refusal('not-joined', 'left while reporting');
      for (const partner of await this.store.dropLinks(peer.id)) await this.#notify(partner, [], [peer.id]);
      const fresh = await this.policy.neighboursFor(peer, [], this.opts.targetNeighbours, this.#ctx());
      for (const n of fresh) {
        await this.store.addLink(peer.id, n);
        await this.#notify(n, [peer.id], []);
      }
      await this.#updateFirstTier(peer.channel);
      const updated = await this.store.getPeer(peer.id);
      if (updated) {
        peer.firstTier = updated.firstTier;
        await this.#notify(peer.id, fresh, []);
      }
      debug('peer %s moved to %s (was first tier: %s)', peer.id, report.rendition, wasFirstTier);
    }
    const before = peer.report?.receivedFrom ?? {};
    peer.flowsIn = {};
    for (const [from, bytes] of Object.entries(report.receivedFrom))
      peer.flowsIn[from] = Math.max(0, bytes - (before[from] ?? 0));
    peer.report = report;
    peer.uploadKbps = Math.max(report.uploadKbps, peer.uploadKbps * 0.5);
    peer.lastSeenAt = Date.now();
    // The peer may have left (or been dropped) while this report was in flight: never bring it back.
    if (!(await this.store.updatePeer(peer))) throw new Refusal('not-joined', 'left while reporting');
  }

  async #signal(socket: IoSocket, payload: unknown): Promise<void> {
    const req = this.#parse(signalRequestSchema, payload);
    const from = socket.data.peerId;
    if (!from) throw new Refusal('not-joined', 'join a channel first');
    const target = await this.store.getPeer(req.to);
    if (!target) throw new Refusal('unknown-peer', 'no such peer');
    if (target.channel !== socket.data.channel)
      throw new Refusal('other-channel', 'peer is in another channel');
    if (!(await this.store.hasLink(from, req.to)))
      throw new Refusal('not-introduced', 'the tracker did not introduce these peers');
    this.io.to(`peer:${req.to}`).emit('signal', { from, data: req.data });
    this.metrics.signals.inc();
  }

  async #removePeer(socket: IoSocket, reason: 'leave' | 'disconnect' | 'timeout'): Promise<void> {
    const id = socket.data.peerId;
    if (!id) return;
    socket.data.peerId = undefined;
    this.#sockets.delete(id);
    const peer = await this.store.deletePeer(id);
    if (socket.connected && socket.data.channel) {
      await socket.leave(`peer:${id}`);
      await socket.leave(`ch:${socket.data.channel}`);
      await socket.leave(`ch:${socket.data.channel}:${socket.data.rendition}`);
    }
    socket.data.channel = undefined;
    this.#pushes.forget(id);
    this.reputation.forget(id);
    if (!peer) return;
    if (peer.report)
      await this.store.addDeparted(peer.channel, {
        httpBytes: peer.report.httpBytes,
        p2pBytes: peer.report.p2pBytes,
        uploadedBytes: peer.report.uploadedBytes,
      });
    for (const partner of await this.store.dropLinks(id)) await this.#notify(partner, [], [id]);
    if (peer.firstTier) await this.#updateFirstTier(peer.channel);
    this.metrics.leaves.inc({ reason });
    this.emit('peer-left', { id, channel: peer.channel, reason });
    debug('peer %s left (%s)', id, reason);
  }

  async #sourceRegister(socket: IoSocket, payload: unknown): Promise<void> {
    const reg = this.#parse(channelRegistrationSchema, payload);
    if (socket.data.peerId)
      throw new Refusal('already-joined', 'a peer connection cannot register a channel');
    if (socket.data.sourceOf && socket.data.sourceOf !== reg.channel)
      throw new Refusal('invalid-input', 'one connection registers one channel');
    await this.register(reg, socket.data.ip);
    socket.data.sourceOf = reg.channel;
    let set = this.#sources.get(reg.channel);
    if (!set) this.#sources.set(reg.channel, (set = new Set()));
    set.add(socket);
  }

  /**
   * A peer complains about a neighbour that misbehaved. Only a neighbour the tracker introduced may
   * complain; when enough distinct neighbours did, the accused is quarantined: its links are dropped,
   * it is introduced to no one, it leaves the first tier, and its address is penalized.
   */
  async #complaint(socket: IoSocket, payload: unknown): Promise<void> {
    const { peer: accusedId, code } = this.#parse(peerComplaintSchema, payload);
    const from = socket.data.peerId;
    if (!from) throw new Refusal('not-joined', 'join a channel first');
    const accused = await this.store.getPeer(accusedId);
    if (!accused) return; // gone already: nothing to do
    if (accused.channel !== socket.data.channel)
      throw new Refusal('other-channel', 'peer is in another channel');
    if (!(await this.store.hasLink(from, accusedId)))
      throw new Refusal('not-introduced', 'only a neighbour may complain about a peer');
    debug('peer %s complains about %s: %s', from, accusedId, code);
    if (accused.quarantined || !this.reputation.complain(accusedId, from, code)) return;
    accused.quarantined = true;
    accused.firstTier = false;
    if (!(await this.store.updatePeer(accused))) return;
    this.reputation.penalize(accused.ip);
    for (const partner of await this.store.dropLinks(accusedId)) await this.#notify(partner, [], [accusedId]);
    await this.#notify(accusedId, [], []);
    await this.#updateFirstTier(accused.channel);
    const reporters = [...this.reputation.complaintsAbout(accusedId).keys()];
    this.metrics.quarantined.inc();
    this.emit('peer-quarantined', { id: accusedId, channel: accused.channel, ip: accused.ip, reporters });
    debug('peer %s quarantined (%s)', accusedId, reporters.join(', '));
  }

  async #sourceAttestation(socket: IoSocket, payload: unknown): Promise<void> {
    const parsed = parseAttestation(payload);
    if (!parsed.ok) throw new Refusal('invalid-input', parsed.message);
    const att = parsed.attestation;
    if (socket.data.sourceOf !== att.channel) throw new Refusal('unauthorized', 'register the channel first');
    // Peers verify it against the origin's key; the tracker only forwards it to that rendition's peers.
    this.io.to(`ch:${att.channel}:${att.rendition}`).emit('attestation', att);
  }

  async #sourceCounters(socket: IoSocket, payload: unknown): Promise<void> {
    const counters = this.#parse(originCountersSchema, payload);
    const id = socket.data.sourceOf;
    if (!id) throw new Refusal('unauthorized', 'register the channel first');
    const rec = await this.store.getChannel(id);
    if (!rec) throw new Refusal('unknown-channel', 'channel vanished');
    // Offload counts from the first report on; if the origin restarted (counters went back), keep the
    // running total continuous.
    if (rec.originBase === null) rec.originBase = counters.segmentBytes;
    else if (rec.origin && counters.segmentBytes < rec.origin.segmentBytes)
      rec.originBase -= rec.origin.segmentBytes;
    rec.origin = counters;
    await this.store.putChannel(id, rec);
  }

  async #watch(socket: IoSocket, payload: unknown): Promise<object> {
    const req = this.#parse(watchRequestSchema, payload ?? {});
    // Directory pushes go to every watcher; stats only for the channel watched (or all when none given).
    await socket.join(['watchers', req.channel ? `watch:${req.channel}` : 'watch:*']);
    return { channels: await this.directory() };
  }

  // ---------------------------------------------------------------- timers

  async #sweep(): Promise<void> {
    const deadline = Date.now() - this.opts.peerTimeoutMs;
    for (const [id, socket] of this.#sockets) {
      const p = await this.store.getPeer(id);
      if (p && p.lastSeenAt < deadline) {
        await this.#removePeer(socket, 'timeout');
        socket.disconnect(true);
      }
    }
    this.#ipConnects.sweep();
    this.ownership.sweep();
    this.reputation.sweep();
    await this.#expireIdleChannels();
  }

  /**
   * A channel that never went live is forgotten (entry and pin) once its source is gone and it was
   * not registered again for `idleChannelTtlMs`: claims that lead nowhere do not pile up.
   */
  async #expireIdleChannels(): Promise<void> {
    const cutoff = Date.now() - this.opts.idleChannelTtlMs;
    for (const [id, pin] of await this.store.listPins()) {
      if (pin.everLive || this.#sources.has(id)) continue;
      const rec = await this.store.getChannel(id);
      if (Math.max(rec?.updatedAt ?? 0, pin.pinnedAtMs, this.#startedAt) > cutoff) continue;
      await this.store.deleteChannel(id);
      this.stats.forget(id);
      await this.ownership.release(id);
      this.#directoryChange(id);
      this.emit('channel-expired', id);
      debug('channel %s expired (never went live)', id);
    }
  }

  async #rebalanceAll(): Promise<void> {
    if (this.#destroyed) return;
    for (const [id] of await this.store.listChannels()) {
      const peers = await this.store.channelPeers(id);
      if (peers.length === 0) continue;
      await this.#updateFirstTier(id);
      // Top up peers that lost neighbours.
      const min = Math.max(1, Math.floor(this.opts.targetNeighbours / 2));
      for (const p of peers) {
        const current = await this.store.linksOf(p.id);
        if (current.length >= min) continue;
        const more = await this.policy.neighboursFor(
          p,
          current,
          this.opts.targetNeighbours - current.length,
          this.#ctx(),
        );
        if (more.length === 0) continue;
        for (const n of more) {
          await this.store.addLink(p.id, n);
          await this.#notify(n, [p.id], []);
        }
        await this.#notify(p.id, more, []);
      }
    }
  }

  async #sampleStats(): Promise<void> {
    if (this.#destroyed) return;
    await this.stats.sample();
    const rooms = this.io.sockets.adapter.rooms;
    if (!rooms.get('watchers')?.size) return;
    // Only channels with a new sample are pushed (an idle one is not sampled again and again).
    const all: ChannelStats[] = [];
    for (const [id] of await this.store.listChannels()) {
      if (!this.stats.changed(id)) continue;
      const s = await this.channelStats(id, PUSHED_HISTORY);
      if (!s) continue;
      all.push(s);
      if (rooms.get(`watch:${id}`)?.size) this.io.to(`watch:${id}`).emit('stats', [s]);
    }
    if (all.length > 0 && rooms.get('watch:*')?.size) this.io.to('watch:*').emit('stats', all);
  }

  async #collectMetrics(): Promise<void> {
    this.metrics.peers.reset();
    this.metrics.viewers.reset();
    this.metrics.channelBytes.reset();
    this.metrics.offload.reset();
    for (const [id] of await this.store.listChannels()) {
      const peers = await this.store.channelPeers(id);
      const kinds = new Map<string, number>();
      for (const p of peers) kinds.set(p.kind, (kinds.get(p.kind) ?? 0) + 1);
      for (const [kind, n] of kinds) this.metrics.peers.set({ channel: id, kind }, n);
      const s = this.stats.current(id);
      this.metrics.viewers.set({ channel: id }, peers.filter((p) => p.mode === 'viewer').length);
      if (!s) continue;
      this.metrics.channelBytes.set({ channel: id, source: 'http' }, s.httpBytes);
      this.metrics.channelBytes.set({ channel: id, source: 'p2p' }, s.p2pBytes);
      if (s.originSegmentBytes !== null)
        this.metrics.channelBytes.set({ channel: id, source: 'origin' }, s.originSegmentBytes);
      if (s.offload !== null) this.metrics.offload.set({ channel: id }, s.offload);
    }
  }
}
