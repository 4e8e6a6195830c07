/**
 * The tracker: channel directory, peer sessions, signaling relay, overlay policy, stats and metrics.
 * A composition: the session core (sessions.ts) with the overlay (overlay.ts), driven by the socket.io
 * gateway (socket-gateway.ts); the REST API and pages (http-api.ts); TURN credentials (turn.ts). What
 * stays here is the composition, the channel directory's (directory.ts) wiring, and the timers.
 * It never touches media bytes.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type express from 'express';
import createDebug from 'debug';
import {
  TypedEmitter,
  type ChannelInfo,
  type ChannelRegistration,
  type ChannelStats,
  type IceServer,
  type TrackerErrorCode,
} from '../protocol/index.ts';
import { ChannelDirectory } from './directory.ts';
import { createHttpApi } from './http-api.ts';
import { TrackerMetrics } from './metrics.ts';
import type { OverlayPolicy } from './policy.ts';
import { createPolicy, type PolicyName } from './policies.ts';
import { ChannelOwnership, DEFAULT_OWNERSHIP, type OwnershipOptions } from './ownership.ts';
import { DEFAULT_REPUTATION, Reputation, type ReputationOptions } from './reputation.ts';
import { DEFAULT_SESSIONS, Sessions, type SessionEvents } from './sessions.ts';
import { SocketGateway, type SocketGatewayOptions, type TrackerIo } from './socket-gateway.ts';
import { DEFAULT_STATS, StatsKeeper, type StatsOptions } from './stats.ts';
import { MemoryTrackerStore, type TrackerStore } from './store.ts';
import { checkTurnOptions, iceServersFor, type TurnOptions } from './turn.ts';

const debug = createDebug('peertv:tracker');
/** Samples sent with each stats push to dashboards (5 minutes at the default interval); REST has all. */
const PUSHED_HISTORY = 150;

/** The socket gateway's options (CORS origins, message size, rate and connection limits) apply to REST too. */
export interface TrackerOptions extends SocketGatewayOptions {
  /** The overlay policy (unless one is given to the constructor): `random` or `chandelier`. */
  policy: PolicyName;
  /** ICE servers handed to peers (STUN, TURN). Never public ones in tests. */
  iceServers: IceServer[];
  /**
   * TURN relays (coturn with `use-auth-secret`): each peer gets time-limited credentials by the TURN
   * REST API scheme (username `<expiry>:<peerId>`, password base64(HMAC-SHA1(secret, username))), so
   * no long-term password reaches a browser.
   */
  turn: TurnOptions | undefined;
  /**
   * Two `stun:` URLs of our STUN server (`peertv stun --alternate`): its primary and its alternate
   * address. Joining peers get them (`natProbe`), and browsers, which cannot run RFC 5780 themselves,
   * learn their NAT's mapping from the server-reflexive candidates ICE gathers against both.
   */
  natProbe: readonly string[];
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
  ...DEFAULT_SESSIONS,
  iceServers: [],
  turn: undefined,
  corsOrigins: ['*'],
  maxHttpBufferSize: 64 * 1024,
  socketEventRate: 20,
  socketEventBurst: 60,
  ipConnectRate: 20,
  ipConnectBurst: 100,
  maxConnectionsPerIp: 200,
  rebalanceIntervalMs: 5000,
  policy: 'random',
  statsIntervalMs: 2000,
  stats: DEFAULT_STATS,
  playerDir: undefined,
  dataDir: undefined,
  ownership: DEFAULT_OWNERSHIP,
  idleChannelTtlMs: 10 * 60_000,
  reputation: DEFAULT_REPUTATION,
};

export type TrackerEvents = SessionEvents & {
  'channel-registered': (id: string) => void;
  /** A channel that never went live expired. */
  'channel-expired': (id: string) => void;
  rejected: (info: { event: string; code: TrackerErrorCode; message: string; ip: string }) => void;
};

export class Tracker extends TypedEmitter<TrackerEvents> {
  readonly opts: TrackerOptions;
  readonly store: TrackerStore;
  readonly policy: OverlayPolicy;
  readonly stats: StatsKeeper;
  readonly metrics: TrackerMetrics;
  readonly ownership: ChannelOwnership;
  readonly reputation: Reputation;
  /** The transport-independent session core (the gateway drives it; so can a simulator). */
  readonly sessions: Sessions;
  readonly app: express.Express;
  readonly server: http.Server;
  readonly io: TrackerIo;
  readonly #gateway: SocketGateway;
  /** The channel directory (registrations, info, stats, expiry, pushes to watchers). */
  readonly channels: ChannelDirectory;
  readonly #timers: NodeJS.Timeout[] = [];
  #destroyed = false;

  constructor(
    opts: Partial<TrackerOptions> = {},
    deps: { store?: TrackerStore; policy?: OverlayPolicy } = {},
  ) {
    super();
    this.opts = { ...DEFAULT_TRACKER, ...opts };
    const o = this.opts;
    if (o.targetNeighbours > o.maxNeighbours)
      throw new RangeError('targetNeighbours must not exceed maxNeighbours');
    checkTurnOptions(o.turn);
    this.store =
      deps.store ??
      new MemoryTrackerStore({
        pinFile: o.dataDir ? pinFilePath(o.dataDir) : undefined,
      });
    this.ownership = new ChannelOwnership(this.store, o.ownership);
    this.reputation = new Reputation(o.reputation);
    this.policy = deps.policy ?? createPolicy(o.policy);
    this.stats = new StatsKeeper(this.store, o.stats);
    this.metrics = new TrackerMetrics();
    this.sessions = new Sessions(o, {
      store: this.store,
      policy: this.policy,
      reputation: this.reputation,
      metrics: this.metrics,
      channelInfo: (id) => this.channelInfo(id),
      iceServersFor: (peerId) => this.iceServersFor(peerId),
    });
    this.sessions.on('peer-joined', (peer) => this.emit('peer-joined', peer));
    this.sessions.on('peer-left', (info) => this.emit('peer-left', info));
    this.sessions.on('peer-quarantined', (info) => this.emit('peer-quarantined', info));
    const rejected = (event: string, code: TrackerErrorCode, message: string, ip: string) =>
      this.#rejected(event, code, message, ip);
    this.app = createHttpApi(o, {
      directory: () => this.directory(),
      channelInfo: (id) => this.channelInfo(id),
      channelStats: (id) => this.channelStats(id),
      register: (reg, ip) => this.register(reg, ip),
      metrics: async () => {
        await this.metrics.collect(this.store, this.stats);
        return {
          contentType: this.metrics.registry.contentType,
          text: await this.metrics.registry.metrics(),
        };
      },
      rejected,
    });
    this.server = http.createServer(this.app);
    this.#gateway = new SocketGateway(this.server, o, {
      sessions: this.sessions,
      metrics: this.metrics,
      register: (reg, ip) => this.register(reg, ip),
      directory: () => this.directory(),
      originCounters: (id, counters) => this.channels.originCounters(id, counters),
      rejected,
    });
    this.io = this.#gateway.io;
    const gateway = this.#gateway;
    this.channels = new ChannelDirectory({
      store: this.store,
      stats: this.stats,
      ownership: this.ownership,
      idleChannelTtlMs: o.idleChannelTtlMs,
      watched: () => gateway.watched(),
      pushDirectory: (delta) => gateway.pushDirectory(delta),
      channelChanged: (info) => gateway.channelChanged(info),
      hasSource: (id) => gateway.hasSource(id),
      registered: (id) => this.emit('channel-registered', id),
      expired: (id) => this.emit('channel-expired', id),
    });
    this.#timers.push(
      setInterval(() => void this.#sweep(), Math.min(1000, o.reportIntervalMs)),
      setInterval(() => void this.sessions.rebalance(), o.rebalanceIntervalMs),
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
    this.channels.destroy();
    // No `disconnect` packet: clients see the transport close and reconnect with their usual backoff
    // (a server-side disconnect would read as a kick, after which clients wait longer).
    const closed = this.#gateway.destroy();
    this.server.closeAllConnections();
    await closed;
    this.sessions.destroy();
    this.removeAllListeners();
  }

  /** ICE servers for one peer: the configured ones plus TURN with fresh time-limited credentials. */
  iceServersFor(peerId: string, nowMs = Date.now()): IceServer[] {
    return iceServersFor(this.opts.iceServers, this.opts.turn, peerId, nowMs);
  }

  #rejected(event: string, code: TrackerErrorCode, message: string, ip: string): void {
    this.metrics.invalid.inc({ event, code });
    debug('refused %s from %s: %s (%s)', event, ip, code, message);
    this.emit('rejected', { event, code, message, ip });
  }

  // ---------------------------------------------------------------- directory

  channelInfo(id: string): Promise<ChannelInfo | undefined> {
    return this.channels.channelInfo(id);
  }

  directory(): Promise<ChannelInfo[]> {
    return this.channels.list();
  }

  /** Stats of a channel with its last `historyLength` samples (all kept when not given). */
  channelStats(id: string, historyLength?: number): Promise<ChannelStats | undefined> {
    return this.channels.channelStats(id, historyLength);
  }

  /** Registers or updates a channel (signed by its key; see {@link ChannelDirectory.register}). */
  register(reg: ChannelRegistration, ip: string): Promise<void> {
    return this.channels.register(reg, ip);
  }

  // ---------------------------------------------------------------- timers

  async #sweep(): Promise<void> {
    await this.sessions.sweep();
    this.#gateway.sweep();
    this.ownership.sweep();
    this.reputation.sweep();
    await this.channels.expireIdle();
  }

  async #sampleStats(): Promise<void> {
    if (this.#destroyed) return;
    await this.stats.sample();
    if (!this.#gateway.watched()) return;
    // Only channels with a new sample are pushed (an idle one is not sampled again and again).
    const all: ChannelStats[] = [];
    for (const [id] of await this.store.listChannels()) {
      if (!this.stats.changed(id)) continue;
      const s = await this.channelStats(id, PUSHED_HISTORY);
      if (!s) continue;
      all.push(s);
      if (this.#gateway.watched(id)) this.#gateway.pushStats(id, [s]);
    }
    if (all.length > 0 && this.#gateway.watched('*')) this.#gateway.pushStats('*', all);
  }
}
