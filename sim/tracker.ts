/**
 * The tracker in the simulator: the real session core (tracker/sessions.ts: joins, reports, signaling
 * relay, neighbour and first-tier pushes, timeouts) with the overlay policy by name, in-process, on the
 * virtual clock and seeded randomness. Each simulated peer gets a {@link SimTrackerConnection} (the
 * engine's `TrackerConnection` seam) whose requests are validated exactly as the socket.io gateway
 * validates them (tracker/requests.ts) and reach the core after the peer's one-way latency plus the
 * tracker's processing delay; answers and pushes come back the same way, and the connection checks the
 * pushes as the real client does. Sweeps and overlay rounds run at the tracker's default intervals.
 * No socket.io, no HTTP, no real timers: the same seed gives the same ids, neighbours and pushes.
 */
import {
  DEFAULT_SESSIONS,
  DEFAULT_TRACKER,
  MemoryTrackerStore,
  createPolicy,
  isPolicyName,
  POLICY_NAMES,
  Refusal,
  Reputation,
  Sessions,
  answer,
  parseJoin,
  type ChannelRecord,
  type OverlayPolicy,
  type PeerHandle,
  type PeerPlace,
  type PeerSession,
  type ReputationOptions,
  type SessionMetrics,
  type SessionOptions,
  type TrackerStore,
} from '../tracker/index.ts';
import {
  parseAttestation,
  parseChannelInfo,
  type Ack,
  type Attestation,
  type ChannelInfo,
  type IceServer,
  type JoinResult,
  type ServerToClientEvents,
} from '../protocol/index.ts';
import type { Clock } from '../peer/index.ts';
import type { Rng } from './rng.ts';
import { SimTrackerConnection } from './tracker-connection.ts';

export { SimTrackerConnection, type SimTrackerConnectionStats } from './tracker-connection.ts';

export interface SimTrackerOptions extends SessionOptions {
  /** The overlay policy, by name (the tracker's `POLICY_NAMES`). */
  policy: string;
  /** Time the tracker takes to handle each request and to send each push (virtual ms). */
  processingDelayMs: number;
  /** One-way latency between a peer and the tracker when its connection gives none (ms). */
  latencyMs: number;
  /** How often first tiers and neighbour counts are revisited (the real tracker's default). */
  rebalanceIntervalMs: number;
  /** How often silent peers are looked for (the real tracker: min(1 s, report interval)). */
  sweepIntervalMs: number;
  /** A peer the tracker timed out connects again after this long (as the real client; 0: never). */
  reconnectAfterKickMs: number;
  /** ICE servers handed to peers at join. */
  iceServers: IceServer[];
  reputation: ReputationOptions;
}

export const DEFAULT_SIM_TRACKER: SimTrackerOptions = {
  ...DEFAULT_SESSIONS,
  policy: 'random',
  processingDelayMs: 1,
  latencyMs: 0,
  rebalanceIntervalMs: DEFAULT_TRACKER.rebalanceIntervalMs,
  sweepIntervalMs: Math.min(1000, DEFAULT_SESSIONS.reportIntervalMs),
  reconnectAfterKickMs: 5000,
  iceServers: [],
  reputation: DEFAULT_TRACKER.reputation,
};

/** Counters that a prom-client registry would keep, as no-ops (they cost more than the work they count). */
const NO_OP = { inc: () => {} };
export const NO_METRICS: SessionMetrics = {
  joins: NO_OP,
  leaves: NO_OP,
  signals: NO_OP,
  rateLimited: NO_OP,
  quarantined: NO_OP,
};

/** The tracker's work, counted in events (deterministic: no wall time). */
export interface TrackerWork {
  /** Joins accepted and refused (refusals include invalid requests). */
  joins: number;
  joinsRefused: number;
  reports: number;
  reportsRefused: number;
  /** Signaling messages relayed, and refused. */
  signals: number;
  signalsRefused: number;
  complaints: number;
  /** Peers that left, for any reason, and those of them the tracker timed out. */
  leaves: number;
  timeouts: number;
  /** Messages sent to peers, by kind. */
  neighbourPushes: number;
  signalPushes: number;
  attestationPushes: number;
  channelPushes: number;
  sweeps: number;
  rebalances: number;
  /** Store calls made by rebalance rounds: a round's cost, in events. */
  rebalanceStoreOps: number;
  /** Every store call (requests, pushes, sweeps and rounds). */
  storeOps: number;
  /** Requests that failed with something other than a refusal (answered `internal`): bugs. */
  internalErrors: number;
}

/** One overlay round: the work done since the previous round, and the peers joined at its end. */
export interface TrackerRound extends TrackerWork {
  atMs: number;
  peers: number;
}

const emptyWork = (): TrackerWork => ({
  joins: 0,
  joinsRefused: 0,
  reports: 0,
  reportsRefused: 0,
  signals: 0,
  signalsRefused: 0,
  complaints: 0,
  leaves: 0,
  timeouts: 0,
  neighbourPushes: 0,
  signalPushes: 0,
  attestationPushes: 0,
  channelPushes: 0,
  sweeps: 0,
  rebalances: 0,
  rebalanceStoreOps: 0,
  storeOps: 0,
  internalErrors: 0,
});

export interface SimTrackerDeps {
  /** The simulation's virtual clock (engines share it). */
  clock: Clock;
  /** The run's seeded generator (the tracker forks its own streams from it). */
  rng: Rng;
  /**
   * The channel as a joining peer gets it, from the simulated source (viewers, status); default: the
   * info last given to {@link SimTracker.registerChannel}.
   */
  channelInfo?(id: string): ChannelInfo | undefined;
  /** Counters of the core (default: no-ops; a `TrackerMetrics` fits). */
  metrics?: SessionMetrics;
}

export type Timer = ReturnType<Clock['setTimeout']>;

/** Events the tracker sends to a peer's connection. */
export type PushEvent = 'neighbours' | 'signal' | 'attestation' | 'channel';
export type Payload<E extends PushEvent> = Parameters<ServerToClientEvents[E]>[0];

/** One connection as the tracker sees it (a socket.io socket's role): one session in the core. */
export interface SimSocket extends PeerHandle {
  /** The tracker's view: false once it closed the socket or heard that the peer did. */
  connected: boolean;
  /** The peer's view: false once the peer closed it or heard that the tracker did. */
  clientConnected: boolean;
  readonly conn: SimTrackerConnection;
  session: PeerSession;
  place: PeerPlace | undefined;
}

const roomOf = (channel: string, rendition: string) => `${channel}\n${rendition}`;

export class SimTracker {
  readonly opts: SimTrackerOptions;
  readonly sessions: Sessions;
  /** The store the core uses (every call counted in {@link TrackerWork.storeOps}). */
  readonly store: TrackerStore;
  readonly policy: OverlayPolicy;
  readonly reputation: Reputation;
  readonly clock: Clock;
  /** The last request that failed with something other than a refusal (see `internalErrors`). */
  lastInternalError: unknown;
  readonly #work = emptyWork();
  readonly #rounds: TrackerRound[] = [];
  #lastRound = emptyWork();
  /** Peers of a channel's rendition, and of a channel (socket.io rooms' role). */
  readonly #rooms = new Map<string, Set<SimSocket>>();
  readonly #channelRooms = new Map<string, Set<SimSocket>>();
  readonly #channels = new Map<string, ChannelInfo>();
  #inRebalance = false;
  #sweepTimer: Timer | undefined;
  #rebalanceTimer: Timer | undefined;
  #connections = 0;
  #destroyed = false;

  constructor(opts: Partial<SimTrackerOptions>, deps: SimTrackerDeps) {
    const given = { ...opts };
    if (given.sweepIntervalMs === undefined && given.reportIntervalMs !== undefined)
      given.sweepIntervalMs = Math.min(1000, given.reportIntervalMs);
    this.opts = { ...DEFAULT_SIM_TRACKER, ...given };
    const o = this.opts;
    for (const key of ['processingDelayMs', 'latencyMs', 'reconnectAfterKickMs'] as const)
      if (!(Number.isFinite(o[key]) && o[key] >= 0)) throw new RangeError(`${key} must be finite and ≥ 0`);
    for (const key of ['rebalanceIntervalMs', 'sweepIntervalMs'] as const)
      if (!(Number.isFinite(o[key]) && o[key] > 0)) throw new RangeError(`${key} must be finite and > 0`);
    const policyName = o.policy;
    if (!isPolicyName(policyName))
      throw new RangeError(`unknown policy ${policyName} (known: ${POLICY_NAMES.join(', ')})`);
    this.clock = deps.clock;
    const { rng } = deps;
    const storeRng = rng.fork('tracker/store');
    const policyRng = rng.fork('tracker/policy');
    const idRng = rng.fork('tracker/ids');
    this.store = this.#counted(new MemoryTrackerStore({}, () => storeRng.next()));
    // The tracker's policies, with the simulator's seeded randomness and virtual time.
    this.policy = createPolicy(policyName, { random: () => policyRng.next(), now: () => deps.clock.now() });
    this.reputation = new Reputation(o.reputation, () => deps.clock.wallNow());
    this.sessions = new Sessions(o, {
      store: this.store,
      policy: this.policy,
      reputation: this.reputation,
      metrics: deps.metrics ?? NO_METRICS,
      channelInfo: async (id) => deps.channelInfo?.(id) ?? this.#channels.get(id),
      iceServersFor: () => o.iceServers,
      clock: deps.clock,
      random: () => idRng.next(),
    });
    this.sessions.on('peer-joined', () => this.#work.joins++);
    this.sessions.on('peer-left', ({ reason }) => {
      this.#work.leaves++;
      if (reason === 'timeout') this.#work.timeouts++;
    });
    this.#scheduleSweep();
    this.#scheduleRebalance();
  }

  // ---------------------------------------------------------------- the simulation's side

  /** A new connection for a simulated peer (`latencyMs`: one way, between it and the tracker). */
  connect(opts: { ip?: string; latencyMs?: number } = {}): SimTrackerConnection {
    if (this.#destroyed) throw new Error('SimTracker: destroyed');
    const n = this.#connections++;
    const latencyMs = opts.latencyMs ?? this.opts.latencyMs;
    if (!(Number.isFinite(latencyMs) && latencyMs >= 0))
      throw new RangeError('latencyMs must be finite and ≥ 0');
    const ip = opts.ip ?? `10.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
    return new SimTrackerConnection(this, ip, latencyMs);
  }

  /**
   * Registers a channel or updates it (the source's `source:register`; the simulated source is
   * trusted: no signature). The channel's joined peers get the new info, as from the real tracker.
   */
  async registerChannel(info: ChannelInfo): Promise<void> {
    const checked = parseChannelInfo(info);
    if (!checked.ok) throw new TypeError(`registerChannel: ${checked.message}`);
    const now = this.clock.wallNow();
    const old = await this.store.getChannel(info.id);
    const rec: ChannelRecord = {
      registration: {
        channel: info.id,
        title: info.title,
        originUrl: info.originUrl,
        publicKey: info.publicKey,
        status: info.status,
        segmentDurationS: info.segmentDurationS,
        renditions: info.renditions.map((r) => ({ ...r })),
        livePlaylist: info.livePlaylist,
        recordings: info.recordings.map((r) => ({ ...r })),
      },
      origin: null,
      originBase: null,
      registeredAt: old?.registeredAt ?? now,
      updatedAt: now,
    };
    await this.store.putChannel(info.id, rec);
    this.#channels.set(info.id, info);
    if (old) for (const sock of this.#channelRooms.get(info.id) ?? []) this.#send(sock, 'channel', info);
  }

  /**
   * Relays a segment's attestation, as the real tracker relays its source's: to the peers of its
   * channel and rendition, after the processing delay and each peer's latency. Returns the number of
   * peers it goes to. The same object reaches every peer (engines do not change what they are given).
   */
  pushAttestation(att: Attestation): number {
    const parsed = parseAttestation(att);
    if (!parsed.ok) throw new TypeError(`pushAttestation: ${parsed.message}`);
    const room = this.#rooms.get(roomOf(att.channel, att.rendition));
    if (!room || this.#destroyed) return 0;
    // One timer per distinct delay, not per peer.
    const byDelay = new Map<number, SimSocket[]>();
    for (const sock of room) {
      const delay = this.opts.processingDelayMs + sock.conn.latencyMs;
      const list = byDelay.get(delay);
      if (list) list.push(sock);
      else byDelay.set(delay, [sock]);
    }
    const a = parsed.attestation;
    for (const [delay, socks] of byDelay)
      this.clock.setTimeout(() => {
        for (const sock of socks) sock.conn.deliver(sock, 'attestation', a);
      }, delay);
    this.#work.attestationPushes += room.size;
    return room.size;
  }

  /** Work counted since the start (a copy). */
  work(): TrackerWork {
    return { ...this.#work };
  }

  /** Work per overlay round (deltas between rounds), oldest first (a copy). */
  rounds(): TrackerRound[] {
    return this.#rounds.map((r) => ({ ...r }));
  }

  /** Peers joined right now. */
  peerCount(): Promise<number> {
    return this.store.countPeers();
  }

  /** Stops the rounds and the core; pending deliveries are dropped. Idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.clock.clearTimeout(this.#sweepTimer);
    this.clock.clearTimeout(this.#rebalanceTimer);
    this.sessions.destroy();
    this.#rooms.clear();
    this.#channelRooms.clear();
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  // ---------------------------------------------------------------- connections (internal)

  /** @internal A connection (re)connects: a new session in the core. */
  open(conn: SimTrackerConnection): SimSocket {
    const sock: SimSocket = {
      ip: conn.ip,
      connected: !this.#destroyed,
      clientConnected: !this.#destroyed,
      conn,
      place: undefined,
      session: undefined as unknown as PeerSession,
      send: (event, payload) => this.#send(sock, event, payload),
      disconnect: () => this.#kick(sock),
      placed: (place, from) => this.#placed(sock, place, from),
    };
    sock.session = this.sessions.open(sock);
    return sock;
  }

  /**
   * @internal A request travels to the tracker (latency), waits its turn (processing delay), runs,
   * and its answer travels back. A request reaching a closed socket, or an answer reaching one, is
   * lost: the promise rejects.
   */
  ask<T extends object>(sock: SimSocket, event: string, run: () => Promise<T | void>): Promise<Ack<T>> {
    return new Promise<Ack<T>>((resolve, reject) => {
      const lost = () => reject(new Error(`${event} failed: connection to the tracker lost`));
      const { latencyMs } = sock.conn;
      this.clock.setTimeout(() => {
        if (!sock.connected || this.#destroyed) return lost();
        void answer(run, (err) => this.#refused(event, err)).then((ack) => {
          const back = () => (sock.clientConnected && !sock.conn.closed ? resolve(ack) : lost());
          if (latencyMs > 0) this.clock.setTimeout(back, latencyMs);
          else back();
        });
      }, latencyMs + this.opts.processingDelayMs);
    });
  }

  /** @internal The peer closed its socket: the tracker hears of it after the latency (and processing). */
  closeFromPeer(sock: SimSocket): void {
    sock.clientConnected = false;
    this.clock.setTimeout(() => {
      if (!sock.connected) return;
      this.#closeSocket(sock);
      if (!this.#destroyed) void this.sessions.leave(sock.session, 'disconnect');
    }, sock.conn.latencyMs + this.opts.processingDelayMs);
  }

  /** @internal Join, with the gateway's edge checks. */
  join(sock: SimSocket, payload: unknown): Promise<JoinResult> {
    return this.sessions.join(sock.session, parseJoin(sock.session, payload));
  }

  /** @internal */
  countRequest(event: 'report' | 'signal' | 'report-peer'): void {
    if (event === 'report') this.#work.reports++;
    else if (event === 'signal') this.#work.signals++;
    else this.#work.complaints++;
  }

  #refused(event: string, err: unknown): void {
    if (event === 'join') this.#work.joinsRefused++;
    else if (event === 'report') this.#work.reportsRefused++;
    else if (event === 'signal') this.#work.signalsRefused++;
    if (err instanceof Refusal) return;
    // A bug in the core (answered `internal`, as the gateway does): counted and kept, never hidden.
    this.#work.internalErrors++;
    this.lastInternalError = err;
  }

  /** A push leaves after the processing delay and reaches the peer after its latency. */
  #send<E extends PushEvent>(sock: SimSocket, event: E, payload: Payload<E>): void {
    if (!sock.connected || this.#destroyed) return;
    if (event === 'neighbours') this.#work.neighbourPushes++;
    else if (event === 'signal') this.#work.signalPushes++;
    else if (event === 'channel') this.#work.channelPushes++;
    else this.#work.attestationPushes++;
    this.clock.setTimeout(
      () => sock.conn.deliver(sock, event, payload),
      this.opts.processingDelayMs + sock.conn.latencyMs,
    );
  }

  /** The core closes a connection (a timed-out peer): the peer hears of it, then connects again. */
  #kick(sock: SimSocket): void {
    if (!sock.connected) return;
    this.#closeSocket(sock);
    this.clock.setTimeout(
      () => sock.conn.kicked(sock, this.opts.reconnectAfterKickMs),
      this.opts.processingDelayMs + sock.conn.latencyMs,
    );
  }

  /** The tracker's side of a socket closes: it leaves its rooms. */
  #closeSocket(sock: SimSocket): void {
    sock.connected = false;
    if (sock.place) this.#leaveRooms(sock, sock.place);
    sock.place = undefined;
  }

  #placed(sock: SimSocket, place: PeerPlace | undefined, from: PeerPlace | undefined): void {
    if (from) this.#leaveRooms(sock, from);
    sock.place = place;
    if (!place) return;
    for (const [rooms, key] of [
      [this.#rooms, roomOf(place.channel, place.rendition)],
      [this.#channelRooms, place.channel],
    ] as const) {
      let set = rooms.get(key);
      if (!set) rooms.set(key, (set = new Set()));
      set.add(sock);
    }
  }

  #leaveRooms(sock: SimSocket, place: PeerPlace): void {
    for (const [rooms, key] of [
      [this.#rooms, roomOf(place.channel, place.rendition)],
      [this.#channelRooms, place.channel],
    ] as const) {
      const set = rooms.get(key);
      set?.delete(sock);
      if (set?.size === 0) rooms.delete(key);
    }
  }

  // ---------------------------------------------------------------- rounds

  #scheduleSweep(): void {
    this.#sweepTimer = this.clock.setTimeout(() => {
      if (this.#destroyed) return;
      this.#work.sweeps++;
      this.reputation.sweep();
      void this.sessions.sweep();
      this.#scheduleSweep();
    }, this.opts.sweepIntervalMs);
  }

  #scheduleRebalance(): void {
    this.#rebalanceTimer = this.clock.setTimeout(() => {
      if (this.#destroyed) return;
      this.#work.rebalances++;
      this.#inRebalance = true;
      void this.sessions.rebalance().finally(() => {
        this.#inRebalance = false;
        void this.#endRound();
      });
      this.#scheduleRebalance();
    }, this.opts.rebalanceIntervalMs);
  }

  async #endRound(): Promise<void> {
    const now = this.#work;
    const round = { atMs: this.clock.now(), peers: 0 } as TrackerRound;
    for (const key of Object.keys(now) as (keyof TrackerWork)[]) round[key] = now[key] - this.#lastRound[key];
    this.#lastRound = { ...now };
    round.peers = await this.store.countPeers();
    this.#rounds.push(round);
  }

  /** The store behind a proxy that counts every call (and those made during a rebalance round). */
  #counted(inner: TrackerStore): TrackerStore {
    const wrapped = new Map<PropertyKey, unknown>();
    return new Proxy(inner, {
      get: (target, key) => {
        const value: unknown = Reflect.get(target, key, target);
        if (typeof value !== 'function') return value;
        let fn = wrapped.get(key);
        if (!fn) {
          const method = value as (...args: unknown[]) => unknown;
          fn = (...args: unknown[]) => {
            this.#work.storeOps++;
            if (this.#inRebalance) this.#work.rebalanceStoreOps++;
            return method.apply(target, args);
          };
          wrapped.set(key, fn);
        }
        return fn;
      },
    });
  }
}
