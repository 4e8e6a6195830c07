/**
 * The tracker's session core, independent of any transport: a peer joins a channel, reports, signals
 * its neighbours, complains about one, leaves or times out; the tracker introduces neighbours and pushes
 * changes (coalesced) and first-tier flags. The socket.io gateway, and the simulator, drive it: each
 * opens a {@link PeerSession} per connection over a {@link PeerHandle} (`send`, `disconnect`) and calls
 * in with requests that are already validated. It never imports socket.io or express.
 */
import crypto from 'node:crypto';
import createDebug from 'debug';
import {
  TRACKER_PUSH_LIMITS,
  TypedEmitter,
  type ChannelInfo,
  type IceServer,
  type JoinResult,
  type joinRequestSchema,
  type PeerComplaint,
  type PeerReport,
  type ServerToClientEvents,
  type SignalRequest,
  type z,
} from '../protocol/index.ts';
import { peerIdFrom, realTrackerClock, type RandomSource, type TrackerClock } from './clock.ts';
import { Overlay } from './overlay.ts';
import type { OverlayPolicy } from './policy.ts';
import { PushQueue, type NeighbourChanges } from './push-queue.ts';
import { TokenBucket } from './rate-limit.ts';
import { Refusal } from './refusal.ts';
import type { Reputation } from './reputation.ts';
import type { PeerRecord, TrackerStore } from './store.ts';

const debug = createDebug('peertv:tracker:sessions');

/** Events the core sends to one peer. */
export type PeerEvent = 'neighbours' | 'signal';

/** Where a joined peer is: transports that broadcast per channel or rendition follow it. */
export interface PeerPlace {
  peerId: string;
  channel: string;
  rendition: string;
}

/** One peer's connection, as the core sees it. */
export interface PeerHandle {
  /** The peer's address (reputation, per-address limits). */
  readonly ip: string;
  /** False once the connection closed (a join that finishes after that is refused). */
  readonly connected: boolean;
  send<E extends PeerEvent>(event: E, payload: Parameters<ServerToClientEvents[E]>[0]): void;
  /** Closes the connection (a timed-out peer); the transport then calls {@link Sessions.leave}. */
  disconnect(reason: 'timeout'): void;
  /** The peer joined, moved to another rendition (`from` is where it was), or left (`undefined`). */
  placed?(place: PeerPlace | undefined, from: PeerPlace | undefined): void | Promise<void>;
}

/** One connection's state in the core. Only the core changes it. */
export interface PeerSession {
  readonly handle: PeerHandle;
  /** Set once joined; cleared when it leaves. */
  peerId: string | undefined;
  channel: string | undefined;
  rendition: string | undefined;
  /** Set while a join is being processed (a second join meanwhile is refused). */
  joining: boolean;
  /** Rendition switches (each one rewires the peer's neighbourhood). */
  readonly switches: TokenBucket;
}

/** A join request as parsed by `joinRequestSchema` (defaults applied). */
export type JoinOrder = z.output<typeof joinRequestSchema>;
export type LeaveReason = 'leave' | 'disconnect' | 'timeout';

export interface SessionOptions {
  maxPeers: number;
  /** Neighbours recommended per peer, and the cap on links per peer. */
  targetNeighbours: number;
  maxNeighbours: number;
  reportIntervalMs: number;
  /** A peer silent for this long is dropped. */
  peerTimeoutMs: number;
  /** Rendition switches a peer may make: per minute, and at once (more are applied later). */
  renditionSwitchesPerMinute: number;
  renditionSwitchBurst: number;
  /** Neighbour pushes to one peer within this window reach it as one message. */
  pushCoalesceMs: number;
  /**
   * Two `stun:` URLs of one RFC 5780 STUN server, its primary and its alternate address (or none):
   * joining peers get them as `natProbe`, and browsers learn their NAT's mapping from them.
   */
  natProbe: readonly string[];
}

export const DEFAULT_SESSIONS: SessionOptions = {
  maxPeers: 50_000,
  targetNeighbours: 6,
  maxNeighbours: 12,
  reportIntervalMs: 5000,
  peerTimeoutMs: 20_000,
  renditionSwitchesPerMinute: 6,
  renditionSwitchBurst: 3,
  pushCoalesceMs: 20,
  natProbe: [],
};

/**
 * The counters the core keeps (a `TrackerMetrics` has them; the simulator may pass no-ops, since
 * a prom-client counter costs more than the work it counts).
 */
export interface SessionMetrics {
  joins: { inc(labels: { channel: string }): void };
  leaves: { inc(labels: { reason: LeaveReason }): void };
  signals: { inc(): void };
  rateLimited: { inc(labels: { event: string }): void };
  quarantined: { inc(): void };
}

export interface SessionDeps {
  store: TrackerStore;
  policy: OverlayPolicy;
  reputation: Reputation;
  metrics: SessionMetrics;
  /** The channel as a joining peer gets it. */
  channelInfo(id: string): Promise<ChannelInfo | undefined>;
  /** ICE servers handed to a peer that joins. */
  iceServersFor(peerId: string): IceServer[];
  /**
   * Time and timers (push coalescing, rate limits, timestamps, timeouts): the real ones by default,
   * the simulator's virtual clock there.
   */
  clock?: TrackerClock;
  /** Wall clock in ms, over `clock.wallNow` (Date.now by default). */
  now?: () => number;
  /**
   * Uniform in [0, 1): peer ids are drawn from it when given (the simulator's seeded generator);
   * by default they come from `crypto.randomBytes`.
   */
  random?: RandomSource;
}

export type SessionEvents = {
  'peer-joined': (peer: PeerRecord) => void;
  'peer-left': (info: { id: string; channel: string; reason: LeaveReason }) => void;
  /** Several neighbours complained about a peer: it is introduced to no one any more. */
  'peer-quarantined': (info: { id: string; channel: string; ip: string; reporters: string[] }) => void;
};

export class Sessions extends TypedEmitter<SessionEvents> {
  readonly opts: SessionOptions;
  readonly store: TrackerStore;
  readonly overlay: Overlay;
  readonly #deps: SessionDeps;
  readonly #now: () => number;
  readonly #clock: TrackerClock;
  readonly #newPeerId: () => string;
  readonly #byPeer = new Map<string, PeerSession>();
  readonly #pushes: PushQueue;
  #destroyed = false;

  constructor(opts: Partial<SessionOptions>, deps: SessionDeps) {
    super();
    // Only this component's options (a caller may hand over a larger object, such as the tracker's).
    const given = opts as Record<string, unknown>;
    this.opts = { ...DEFAULT_SESSIONS };
    for (const key of Object.keys(DEFAULT_SESSIONS) as (keyof SessionOptions)[])
      if (given[key] !== undefined) (this.opts as unknown as Record<string, unknown>)[key] = given[key];
    const o = this.opts;
    if (o.natProbe.length !== 0 && o.natProbe.length !== 2)
      throw new RangeError('natProbe is two stun: URLs (primary and alternate address) or none');
    if (o.peerTimeoutMs <= o.reportIntervalMs)
      throw new RangeError('peerTimeoutMs must exceed reportIntervalMs');
    if (!(o.renditionSwitchesPerMinute > 0 && o.renditionSwitchBurst >= 1))
      throw new RangeError('rendition switch limits must be positive');
    this.#deps = deps;
    this.store = deps.store;
    const clock = (this.#clock = deps.clock ?? realTrackerClock);
    this.#now = deps.now ?? (() => clock.wallNow());
    const random = deps.random;
    this.#newPeerId = random ? () => peerIdFrom(random) : () => crypto.randomBytes(12).toString('base64url');
    this.#pushes = new PushQueue(
      (id, changes) => void this.#sendNeighbours(id, changes),
      o.pushCoalesceMs,
      clock,
    );
    this.overlay = new Overlay(deps.store, deps.policy, o, (id, add, remove) =>
      this.#pushes.add(id, add, remove),
    );
  }

  /** A new connection, not joined yet. */
  open(handle: PeerHandle): PeerSession {
    return {
      handle,
      peerId: undefined,
      channel: undefined,
      rendition: undefined,
      joining: false,
      switches: new TokenBucket(
        this.opts.renditionSwitchesPerMinute / 60,
        this.opts.renditionSwitchBurst,
        () => this.#clock.now(),
      ),
    };
  }

  /** The session of a joined peer. */
  session(peerId: string): PeerSession | undefined {
    return this.#byPeer.get(peerId);
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#pushes.destroy();
    this.#byPeer.clear();
    this.removeAllListeners();
  }

  // ---------------------------------------------------------------- requests

  async join(s: PeerSession, req: JoinOrder): Promise<JoinResult> {
    if (s.peerId || s.joining) throw new Refusal('already-joined', 'this connection already joined');
    s.joining = true;
    try {
      return await this.#admit(s, req);
    } finally {
      s.joining = false;
    }
  }

  async #admit(s: PeerSession, req: JoinOrder): Promise<JoinResult> {
    const { store, reputation, metrics } = this.#deps;
    const channel = await store.getChannel(req.channel);
    if (!channel) throw new Refusal('unknown-channel', `no channel ${req.channel}`);
    const renditions = channel.registration.renditions;
    const rendition =
      req.rendition ?? renditions.reduce((a, b) => (a.bandwidthBps <= b.bandwidthBps ? a : b)).name;
    if (!renditions.some((r) => r.name === rendition))
      throw new Refusal('invalid-input', `channel ${req.channel} has no rendition ${rendition}`);
    if ((await store.countPeers()) >= this.opts.maxPeers)
      throw new Refusal('tracker-full', 'tracker is full');
    // An address whose peer was quarantined gets new identities only slowly.
    if (!reputation.mayJoin(s.handle.ip)) {
      metrics.rateLimited.inc({ event: 'join' });
      throw new Refusal('rate-limited', 'a peer from this address misbehaved: joins are slowed down');
    }
    const now = this.#now();
    const peer: PeerRecord = {
      id: this.#newPeerId(),
      channel: req.channel,
      kind: req.kind,
      mode: req.mode,
      rendition,
      natType: req.natType,
      uploadKbps: req.uploadKbps,
      ip: s.handle.ip,
      joinedAt: now,
      lastSeenAt: now,
      firstTier: false,
      quarantined: false,
      report: null,
      flowsIn: {},
    };
    if (!s.handle.connected) throw new Refusal('not-joined', 'connection closed while joining');
    await store.putPeer(peer);
    s.peerId = peer.id;
    s.channel = peer.channel;
    s.rendition = peer.rendition;
    this.#byPeer.set(peer.id, s);
    await s.handle.placed?.({ peerId: peer.id, channel: peer.channel, rendition }, undefined);
    const neighbours = await this.overlay.introduce(peer, false);
    await this.overlay.updateFirstTier(peer.channel);
    for (const n of neighbours) this.#pushes.add(n, [peer.id], []);
    // Its ranked suppliers, when the policy plans them, in a push right after the answer.
    if (this.overlay.policy.wantedLinks) this.#pushes.add(peer.id, [], []);
    metrics.joins.inc({ channel: peer.channel });
    this.emit('peer-joined', peer);
    debug(
      'peer %s joined %s (%s/%s), %d neighbours',
      peer.id,
      peer.channel,
      peer.kind,
      peer.mode,
      neighbours.length,
    );
    const fresh = await store.getPeer(peer.id);
    return {
      peerId: peer.id,
      rendition,
      iceServers: this.#deps.iceServersFor(peer.id),
      ...(this.opts.natProbe.length === 2 && { natProbe: [...this.opts.natProbe] }),
      channel: (await this.#deps.channelInfo(peer.channel))!,
      neighbours,
      firstTier: fresh?.firstTier ?? false,
      reportIntervalMs: this.opts.reportIntervalMs,
    };
  }

  async report(s: PeerSession, report: PeerReport): Promise<void> {
    const { store, metrics } = this.#deps;
    const peer = s.peerId ? await store.getPeer(s.peerId) : undefined;
    if (!peer) throw new Refusal('not-joined', 'join a channel first');
    // A switch rewires the peer's whole neighbourhood: a peer flipping renditions faster than its
    // budget keeps its old one on the tracker until the budget allows (its reports still count).
    if (report.rendition !== peer.rendition && !s.switches.take()) {
      metrics.rateLimited.inc({ event: 'rendition-switch' });
      report.rendition = peer.rendition;
    }
    if (report.rendition !== peer.rendition) await this.#switchRendition(s, peer, report.rendition);
    const before = peer.report?.receivedFrom ?? {};
    peer.flowsIn = {};
    for (const [from, bytes] of Object.entries(report.receivedFrom))
      peer.flowsIn[from] = Math.max(0, bytes - (before[from] ?? 0));
    peer.report = report;
    peer.uploadKbps = Math.max(report.uploadKbps, peer.uploadKbps * 0.5);
    // Learned after joining (a browser's ICE probe): taken once, while the type held is unknown.
    if (report.natType && peer.natType === 'unknown') peer.natType = report.natType;
    peer.lastSeenAt = this.#now();
    // The peer may have left (or been dropped) while this report was in flight: never bring it back.
    if (!(await store.updatePeer(peer))) throw new Refusal('not-joined', 'left while reporting');
  }

  /** Neighbours and first tier are per rendition: the peer starts over in the new one. */
  async #switchRendition(s: PeerSession, peer: PeerRecord, rendition: string): Promise<void> {
    const store = this.#deps.store;
    const channel = await store.getChannel(peer.channel);
    if (!channel?.registration.renditions.some((r) => r.name === rendition))
      throw new Refusal('invalid-input', `no rendition ${rendition}`);
    const from: PeerPlace = { peerId: peer.id, channel: peer.channel, rendition: peer.rendition };
    await s.handle.placed?.({ ...from, rendition }, from);
    peer.rendition = rendition;
    s.rendition = rendition;
    const wasFirstTier = peer.firstTier;
    peer.firstTier = false;
    if (!(await store.updatePeer(peer))) throw new Refusal('not-joined', 'left while reporting');
    for (const partner of await store.dropLinks(peer.id)) this.#pushes.add(partner, [], [peer.id]);
    const fresh = await this.overlay.introduce(peer);
    await this.overlay.updateFirstTier(peer.channel);
    const updated = await store.getPeer(peer.id);
    if (updated) {
      peer.firstTier = updated.firstTier;
      this.#pushes.add(peer.id, fresh, []);
    }
    debug('peer %s moved to %s (was first tier: %s)', peer.id, rendition, wasFirstTier);
  }

  /** Relays a signaling message, only between peers of one channel that the tracker introduced. */
  async signal(s: PeerSession, req: SignalRequest): Promise<void> {
    const { store, metrics } = this.#deps;
    const from = s.peerId;
    if (!from) throw new Refusal('not-joined', 'join a channel first');
    const target = await store.getPeer(req.to);
    if (!target) throw new Refusal('unknown-peer', 'no such peer');
    if (target.channel !== s.channel) throw new Refusal('other-channel', 'peer is in another channel');
    if (!(await store.hasLink(from, req.to)))
      throw new Refusal('not-introduced', 'the tracker did not introduce these peers');
    this.#byPeer.get(req.to)?.handle.send('signal', { from, data: req.data });
    metrics.signals.inc();
  }

  /**
   * A peer complains about a neighbour that misbehaved. Only a neighbour the tracker introduced may
   * complain; when enough distinct neighbours did, the accused is quarantined: its links are dropped,
   * it is introduced to no one, it leaves the first tier, and its address is penalized.
   */
  async complain(s: PeerSession, complaint: PeerComplaint): Promise<void> {
    const { store, reputation, metrics } = this.#deps;
    const { peer: accusedId, code } = complaint;
    const from = s.peerId;
    if (!from) throw new Refusal('not-joined', 'join a channel first');
    const accused = await store.getPeer(accusedId);
    if (!accused) return; // gone already: nothing to do
    if (accused.channel !== s.channel) throw new Refusal('other-channel', 'peer is in another channel');
    if (!(await store.hasLink(from, accusedId)))
      throw new Refusal('not-introduced', 'only a neighbour may complain about a peer');
    debug('peer %s complains about %s: %s', from, accusedId, code);
    if (accused.quarantined || !reputation.complain(accusedId, from, code)) return;
    accused.quarantined = true;
    accused.firstTier = false;
    if (!(await store.updatePeer(accused))) return;
    reputation.penalize(accused.ip);
    for (const partner of await store.dropLinks(accusedId)) this.#pushes.add(partner, [], [accusedId]);
    this.#pushes.add(accusedId, [], []);
    await this.overlay.updateFirstTier(accused.channel);
    const reporters = [...reputation.complaintsAbout(accusedId).keys()];
    metrics.quarantined.inc();
    this.emit('peer-quarantined', { id: accusedId, channel: accused.channel, ip: accused.ip, reporters });
    debug('peer %s quarantined (%s)', accusedId, reporters.join(', '));
  }

  /** The peer leaves (asked, connection closed, or timed out); its neighbours are told. Idempotent. */
  async leave(s: PeerSession, reason: LeaveReason): Promise<void> {
    const { store, reputation, metrics } = this.#deps;
    const id = s.peerId;
    if (!id) return;
    s.peerId = undefined;
    this.#byPeer.delete(id);
    const peer = await store.deletePeer(id);
    if (s.handle.connected && s.channel && s.rendition)
      await s.handle.placed?.(undefined, { peerId: id, channel: s.channel, rendition: s.rendition });
    s.channel = undefined;
    this.#pushes.forget(id);
    reputation.forget(id);
    if (!peer) return;
    if (peer.report)
      await store.addDeparted(peer.channel, {
        httpBytes: peer.report.httpBytes,
        p2pBytes: peer.report.p2pBytes,
        uploadedBytes: peer.report.uploadedBytes,
      });
    for (const partner of await store.dropLinks(id)) this.#pushes.add(partner, [], [id]);
    if (peer.firstTier) await this.overlay.updateFirstTier(peer.channel);
    metrics.leaves.inc({ reason });
    this.emit('peer-left', { id, channel: peer.channel, reason });
    debug('peer %s left (%s)', id, reason);
  }

  // ---------------------------------------------------------------- timers

  /** Drops peers silent for `peerTimeoutMs` and closes their connections. */
  async sweep(): Promise<void> {
    const deadline = this.#now() - this.opts.peerTimeoutMs;
    for (const [id, s] of this.#byPeer) {
      const p = await this.#deps.store.getPeer(id);
      if (p && p.lastSeenAt < deadline) {
        await this.leave(s, 'timeout');
        s.handle.disconnect('timeout');
      }
    }
  }

  /** One overlay round (first tiers, top-ups); pushes go out coalesced. */
  async rebalance(): Promise<void> {
    if (this.#destroyed) return;
    await this.overlay.rebalanceAll();
  }

  /** Sends the changes the push queue coalesced for one peer, with its current first-tier flag. */
  async #sendNeighbours(peerId: string, changes: NeighbourChanges): Promise<void> {
    const p = await this.#deps.store.getPeer(peerId);
    if (!p || this.#destroyed) return;
    // An introduction whose link went meanwhile (a leave, a quarantine) is not news any more.
    const add: string[] = [];
    for (const id of changes.add) if (await this.#deps.store.hasLink(peerId, id)) add.push(id);
    // A planning policy's ranked suppliers go with every push (the random policy has none).
    const parents = this.overlay.policy.wantedLinks?.(p.channel, peerId);
    this.#byPeer.get(peerId)?.handle.send('neighbours', {
      add,
      remove: changes.remove,
      firstTier: p.firstTier,
      ...(parents && { parents: parents.slice(0, TRACKER_PUSH_LIMITS.parents) }),
    });
  }
}
