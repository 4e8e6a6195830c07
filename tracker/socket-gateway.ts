/**
 * The socket.io adapter: admits connections (per-address rate and count limits), rate-limits every
 * event per connection (persistent abuse costs the connection), validates payloads with the zod
 * schemas, then calls the session core ({@link Sessions}) or the tracker's directory. Peers are placed
 * in rooms (`peer:<id>`, `ch:<channel>`, `ch:<channel>:<rendition>`) so broadcasts are encoded once.
 * Source connections (register, attestations, origin counters) and dashboard watchers live here too.
 */
import type http from 'node:http';
import createDebug from 'debug';
import { Server as IoServer, type Socket } from 'socket.io';
import {
  channelRegistrationSchema,
  originCountersSchema,
  parseAttestation,
  watchRequestSchema,
  type Ack,
  type ChannelInfo,
  type ChannelRegistration,
  type ChannelStats,
  type ClientToServerEvents,
  type DirectoryUpdate,
  type OriginCounters,
  type ServerToClientEvents,
  type TrackerErrorCode,
} from '../protocol/index.ts';
import type { TrackerMetrics } from './metrics.ts';
import { KeyedBuckets, TokenBucket } from './rate-limit.ts';
import { Refusal } from './refusal.ts';
import { answer, parseInput as parse, parseJoin, peerRequests } from './requests.ts';
import type { PeerHandle, PeerSession, Sessions } from './sessions.ts';

const debug = createDebug('peertv:tracker:socket');

export interface SocketGatewayOptions {
  /** Origins allowed by CORS; `['*']` allows any. */
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
}

/** What the gateway calls besides the session core. */
export interface SocketGatewayDeps {
  sessions: Sessions;
  metrics: TrackerMetrics;
  /** Registers or updates a channel (signed; may throw a {@link Refusal}). */
  register(reg: ChannelRegistration, ip: string): Promise<void>;
  directory(): Promise<ChannelInfo[]>;
  /** The origin's byte counters of a channel its source registered. */
  originCounters(channel: string, counters: OriginCounters): Promise<void>;
  /** Counts and reports a refused request. */
  rejected(event: string, code: TrackerErrorCode, message: string, ip: string): void;
}

export interface SocketData {
  /** The joined peer's id (read from the session). */
  readonly peerId: string | undefined;
  session: PeerSession;
  sourceOf?: string;
  ip: string;
  bucket: TokenBucket;
  strikes: number;
  strikesSince: number;
}

export type TrackerIo = IoServer<
  ClientToServerEvents,
  ServerToClientEvents,
  Record<string, never>,
  SocketData
>;
type IoSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

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

/** Refused events within a minute that cost the connection. */
const MAX_STRIKES_PER_MINUTE = 200;

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

export class SocketGateway {
  readonly io: TrackerIo;
  readonly #opts: SocketGatewayOptions;
  readonly #deps: SocketGatewayDeps;
  #destroyed: Promise<void> | undefined;
  readonly #ipConnects: KeyedBuckets;
  readonly #ipConnections = new Map<string, number>();
  /** Channel id → its registered source connections. */
  readonly #sources = new Map<string, Set<IoSocket>>();

  constructor(server: http.Server, opts: SocketGatewayOptions, deps: SocketGatewayDeps) {
    this.#opts = opts;
    this.#deps = deps;
    this.#ipConnects = new KeyedBuckets(opts.ipConnectRate || 1e9, opts.ipConnectBurst || 1e9);
    const anyOrigin = opts.corsOrigins.includes('*');
    this.io = new IoServer(server, {
      maxHttpBufferSize: opts.maxHttpBufferSize,
      cors: { origin: anyOrigin ? '*' : opts.corsOrigins, methods: ['GET', 'POST'] },
      serveClient: true,
      pingInterval: 10_000,
      pingTimeout: 10_000,
    });
    this.io.use((socket, next) => this.#admit(socket as IoSocket, next));
    this.io.on('connection', (socket) => this.#onConnection(socket as IoSocket));
  }

  /** A channel has a connected source (an idle channel with one does not expire). */
  hasSource(channel: string): boolean {
    return this.#sources.has(channel);
  }

  /** Forgets idle per-address connection buckets. */
  sweep(): void {
    this.#ipConnects.sweep();
  }

  // ---------------------------------------------------------------- broadcasts

  /** A channel's entry changed: its peers get it. */
  channelChanged(info: ChannelInfo): void {
    this.io.to(`ch:${info.id}`).emit('channel', info);
  }

  /** Someone watches the directory (`undefined`), one channel's stats (its id), or all stats (`'*'`). */
  watched(scope?: string): boolean {
    const room = scope === undefined ? 'watchers' : `watch:${scope}`;
    return (this.io.sockets.adapter.rooms.get(room)?.size ?? 0) > 0;
  }

  pushDirectory(update: DirectoryUpdate): void {
    this.io.to('watchers').emit('directory-update', update);
  }

  /** Stats to the watchers of one channel (its id) or of all (`'*'`). */
  pushStats(scope: string, stats: ChannelStats[]): void {
    this.io.to(`watch:${scope}`).emit('stats', stats);
  }

  /**
   * Closes every connection (no `disconnect` packet: clients reconnect with their usual backoff).
   * Idempotent: a second call returns the same promise.
   */
  destroy(): Promise<void> {
    this.#destroyed ??= new Promise<void>((resolve) => this.io.close(() => resolve()));
    return this.#destroyed;
  }

  // ---------------------------------------------------------------- connections

  #admit(socket: IoSocket, next: (err?: Error) => void): void {
    const ip = socket.handshake.address;
    if (this.#opts.ipConnectRate > 0 && !this.#ipConnects.take(ip)) {
      this.#deps.metrics.rateLimited.inc({ event: 'connect' });
      this.#deps.rejected('connect', 'rate-limited', 'too many connections per second', ip);
      return next(new Error('rate-limited'));
    }
    const open = this.#ipConnections.get(ip) ?? 0;
    if (this.#opts.maxConnectionsPerIp > 0 && open >= this.#opts.maxConnectionsPerIp) {
      this.#deps.rejected('connect', 'rate-limited', 'too many connections from this address', ip);
      return next(new Error('rate-limited'));
    }
    this.#ipConnections.set(ip, open + 1);
    const handle: PeerHandle = {
      ip,
      get connected() {
        return socket.connected;
      },
      send: (event, payload) =>
        void socket.emit(event, ...([payload] as Parameters<ServerToClientEvents[typeof event]>)),
      disconnect: () => void socket.disconnect(true),
      placed: async (place, from) => {
        if (place && !from)
          await socket.join([
            `peer:${place.peerId}`,
            `ch:${place.channel}`,
            `ch:${place.channel}:${place.rendition}`,
          ]);
        else if (place && from) {
          await socket.leave(`ch:${from.channel}:${from.rendition}`);
          await socket.join(`ch:${place.channel}:${place.rendition}`);
        } else if (from) {
          await socket.leave(`peer:${from.peerId}`);
          await socket.leave(`ch:${from.channel}`);
          await socket.leave(`ch:${from.channel}:${from.rendition}`);
        }
      },
    };
    const session = this.#deps.sessions.open(handle);
    socket.data = {
      get peerId() {
        return session.peerId;
      },
      session,
      ip,
      bucket: new TokenBucket(this.#opts.socketEventRate, this.#opts.socketEventBurst),
      strikes: 0,
      strikesSince: Date.now(),
    };
    next();
  }

  #onConnection(socket: IoSocket): void {
    const { metrics, sessions } = this.#deps;
    metrics.sockets.inc();
    // Every event counts against the connection's rate limit, known or not, before anything is parsed
    // further; unknown events are refused. Persistent abuse costs the connection.
    socket.use((packet, next) => {
      const [event, ...args] = packet as unknown as [unknown, ...unknown[]];
      const name = typeof event === 'string' ? event.slice(0, 64) : '?';
      const known = CLIENT_EVENTS.has(name);
      const label = known ? name : 'unknown';
      if (!socket.data.bucket.take()) {
        metrics.rateLimited.inc({ event: label });
        this.#deps.rejected(label, 'rate-limited', 'too many events', socket.data.ip);
        replyTo(args, { ok: false, error: { code: 'rate-limited', message: 'slow down' } });
        return this.#strike(socket);
      }
      if (!known) {
        this.#deps.rejected(
          'unknown',
          'invalid-input',
          `unknown event ${JSON.stringify(name)}`,
          socket.data.ip,
        );
        replyTo(args, { ok: false, error: { code: 'invalid-input', message: 'unknown event' } });
        return this.#strike(socket);
      }
      next();
    });
    const handle = (event: string, fn: (payload: unknown) => Promise<object | void>) => {
      socket.on(event as keyof ClientToServerEvents, async (...args: unknown[]) => {
        const ack = typeof args.at(-1) === 'function' ? (args.pop() as (a: Ack<object>) => void) : undefined;
        const answered = await answer(
          () => fn(args[0]),
          (err) => {
            if (err instanceof Refusal) this.#deps.rejected(event, err.code, err.message, socket.data.ip);
            else debug('handler %s failed: %s', event, (err as Error).stack);
          },
        );
        replyTo(ack ? [ack] : [], answered);
      });
    };
    const session = socket.data.session;
    handle('join', (p) => this.#join(socket, p));
    handle('report', (p) => peerRequests.report(sessions, session, p));
    handle('signal', (p) => peerRequests.signal(sessions, session, p));
    handle('leave', () => peerRequests.leave(sessions, session));
    handle('report-peer', (p) => peerRequests['report-peer'](sessions, session, p));
    handle('source:register', (p) => this.#sourceRegister(socket, p));
    handle('source:attestation', (p) => this.#sourceAttestation(socket, p));
    handle('source:counters', (p) => this.#sourceCounters(socket, p));
    handle('watch', (p) => this.#watch(socket, p));
    socket.on('disconnect', () => {
      metrics.sockets.dec();
      const ip = socket.data.ip;
      const n = (this.#ipConnections.get(ip) ?? 1) - 1;
      if (n <= 0) this.#ipConnections.delete(ip);
      else this.#ipConnections.set(ip, n);
      const owned = socket.data.sourceOf ? this.#sources.get(socket.data.sourceOf) : undefined;
      owned?.delete(socket);
      if (owned?.size === 0) this.#sources.delete(socket.data.sourceOf!);
      void sessions.leave(session, 'disconnect');
    });
  }

  /** A refused event: too many within a minute cost the connection. */
  #strike(socket: IoSocket): void {
    const now = Date.now();
    if (now - socket.data.strikesSince > 60_000) {
      socket.data.strikes = 0;
      socket.data.strikesSince = now;
    }
    if (++socket.data.strikes > MAX_STRIKES_PER_MINUTE) socket.disconnect(true);
  }

  // ---------------------------------------------------------------- events

  async #join(socket: IoSocket, payload: unknown): Promise<object> {
    const session = socket.data.session;
    const req = parseJoin(session, payload);
    if (socket.data.sourceOf)
      throw new Refusal('already-joined', 'a source connection cannot join as a peer');
    return this.#deps.sessions.join(session, req);
  }

  async #sourceRegister(socket: IoSocket, payload: unknown): Promise<void> {
    const reg = parse(channelRegistrationSchema, payload);
    if (socket.data.peerId)
      throw new Refusal('already-joined', 'a peer connection cannot register a channel');
    if (socket.data.sourceOf && socket.data.sourceOf !== reg.channel)
      throw new Refusal('invalid-input', 'one connection registers one channel');
    await this.#deps.register(reg, socket.data.ip);
    socket.data.sourceOf = reg.channel;
    let set = this.#sources.get(reg.channel);
    if (!set) this.#sources.set(reg.channel, (set = new Set()));
    set.add(socket);
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
    const counters = parse(originCountersSchema, payload);
    const id = socket.data.sourceOf;
    if (!id) throw new Refusal('unauthorized', 'register the channel first');
    await this.#deps.originCounters(id, counters);
  }

  async #watch(socket: IoSocket, payload: unknown): Promise<object> {
    const req = parse(watchRequestSchema, payload ?? {});
    // Directory pushes go to every watcher; stats only for the channel watched (or all when none given).
    await socket.join(['watchers', req.channel ? `watch:${req.channel}` : 'watch:*']);
    return { channels: await this.#deps.directory() };
  }
}
