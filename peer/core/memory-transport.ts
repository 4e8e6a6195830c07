/**
 * An in-memory network of peers for tests and the simulator: the `Transport` seam without WebRTC. One
 * model, cheap enough for 10 000 peers in one process (no per-pair tables; per message O(1) work and
 * at most one timer per FIFO server it crosses with a finite rate, plus one for its arrival, shared by
 * the messages of a link due at the same instant).
 *
 * - Signaling goes through the normal `signal` events (the engine relays them via the tracker): the
 *   initiator emits an `offer`, the answerer answers. Once the answer reaches the initiator, ICE and
 *   DTLS take `handshakeMs`, then the answerer connects one latency later and the initiator one more
 *   latency later (the handshake's round trip).
 * - One-way latency of a link: a `setLatency` override for the pair, else `latencyModel(a, b)` (called
 *   once per link, when the handshake pairs its ends), else `latencyMs`. Per message, optional jitter
 *   (uniform in [0, `jitterMs`)) and loss (each loss, with probability `lossRate`, costs one more round
 *   trip: SCTP retransmits, a message is never dropped); a link's messages never overtake each other
 *   (an ordered data channel: a late one holds back the next, head-of-line blocking). Randomness only
 *   from the injected `random` (seeded in the simulator), never `Math.random`.
 * - FIFO servers (memory-queues.ts), whole messages: per link direction (`setLinkBandwidth`), then the
 *   sender's uplink shared by its links; the message is then "on the wire" (`bufferedAmount` counts a
 *   link's bytes not yet on the wire; `drain` fires when it falls from above the low-water mark to at or
 *   below it); through its TURN relay if the pair needs one; after the latency, into the receiver's
 *   downlink (`setDownloadBandwidth`), shared by all its links; then delivered. Unlimited rates (the
 *   defaults) cost no time and no timer.
 * - NAT types (`setNatType`, memory-nat.ts for the table) decide whether a pair connects directly; if
 *   not, through a TURN relay (`addTurnRelay`, `setTurnRelay`), adding its latency and its shared
 *   capacity, with `route()` reporting `relayed: true`. Without a relay, ICE fails: no `connect`, and
 *   after `iceFailureMs` both ends close with `webrtc-error: ERR_ICE_CONNECTION_FAILURE …` as
 *   simple-peer does (the engine's connect timeout usually fires first).
 * - `partition(a, b)` / `cut(peer)` make links silent: messages (and close notices) are dropped, nobody
 *   is told, no `close`. A handshake across a partition never completes (the engine's connect timeout
 *   handles it). `heal` / `restore` let traffic through again, and a close notice lost meanwhile is then
 *   delivered.
 * - Messages arrive whole and in order; queued-but-not-on-the-wire bytes are discarded on `destroy`
 *   (as simple-peer's immediate `pc.close()` does); bytes already on the wire still arrive, then the
 *   remote gets `close('remote-closed')`.
 * - Counters per peer (`stats`) and overall (`totals`): bytes sent = received + discarded + in flight.
 *
 * All time comes from the injected clock (ManualClock or the real one). No timers of its own.
 */
import type { IceServer, NatType } from '../../protocol/index.ts';
import { NAT_TYPES } from '../../protocol/index.ts';
import { MemoryLink, type Packet, type PairPath } from './memory-link.ts';
import { connectsDirectly, relayingSides, type TurnRelayConfig } from './memory-nat.ts';
import { FifoServer } from './memory-queues.ts';
import type { Clock, PeerLink, Transport } from './seams.ts';

export { MemoryLink } from './memory-link.ts';
export { connectsDirectly, type TurnRelayConfig } from './memory-nat.ts';

/** A per-pair figure: a constant, or a function of the two peers (called once per link). */
export type PairValue = number | ((a: string, b: string) => number);

export interface MemoryNetworkConfig {
  /** Default one-way latency between two peers (ms); `latencyModel` and `setLatency` override it. */
  latencyMs: number;
  /** One-way latency of a pair (ms), called once per link when its ends pair; `setLatency` overrides. */
  latencyModel?: (a: string, b: string) => number;
  /** Default upload bandwidth of every peer (bytes/s, shared by its links); Infinity = unlimited. */
  uploadBytesPerS: number;
  /** Default download bandwidth of every peer (bytes/s, shared by its links); Infinity = unlimited. */
  downloadBytesPerS: number;
  /** `drain` fires when a link's `bufferedAmount` falls to this or below. */
  lowWaterMarkBytes: number;
  /** ICE + DTLS time added to each connection's establishment (ms), on top of the signaling round trip. */
  handshakeMs: PairValue;
  /** Per-message extra latency, uniform in [0, jitterMs) (ms); never reorders a link. Needs `random`. */
  jitterMs: number;
  /** Probability that a transmission is lost and retransmitted one round trip later (0 ≤ p < 1). */
  lossRate: PairValue;
  /** An incompatible pair without a TURN relay closes after this long (ms); Infinity = stalls forever. */
  iceFailureMs: number;
  /** Uniform in [0, 1), seeded: the only randomness (jitter, loss). Required when either is on. */
  random?: () => number;
}

export const DEFAULT_MEMORY_NETWORK: MemoryNetworkConfig = {
  latencyMs: 10,
  uploadBytesPerS: Infinity,
  downloadBytesPerS: Infinity,
  lowWaterMarkBytes: 256 * 1024,
  handshakeMs: 0,
  jitterMs: 0,
  lossRate: 0,
  // Browsers give up on ICE checks after some tens of seconds; the engine's connect timeout is shorter.
  iceFailureMs: 30_000,
};

/** What one peer moved, in bytes and messages. */
export interface MemoryPeerStats {
  sentBytes: number;
  sentMessages: number;
  receivedBytes: number;
  receivedMessages: number;
  /** Sent by this peer and never delivered: queued at a destroy, dropped by a partition or a closed end. */
  discardedBytes: number;
  discardedMessages: number;
}

export interface MemoryNetworkTotals extends MemoryPeerStats {
  /** Sent and neither received nor discarded yet (0 once the clock is idle). */
  inFlightBytes: number;
  inFlightMessages: number;
  /** Bytes that crossed a TURN relay. */
  relayedBytes: number;
  peers: number;
  openLinks: number;
}

export interface TurnRelayStats {
  relayedBytes: number;
  relayedMessages: number;
  /** Messages waiting or in transmission. */
  queued: number;
}

/** @internal one peer's servers, NAT and counters. */
export interface PeerState {
  readonly id: string;
  readonly uplink: FifoServer<Packet>;
  downlink: FifoServer<Packet> | undefined;
  nat: NatType;
  relayId: string | undefined;
  readonly stats: MemoryPeerStats;
}

/** @internal a TURN relay. */
export interface TurnRelay {
  readonly config: Readonly<TurnRelayConfig>;
  readonly server: FifoServer<Packet>;
  readonly stats: TurnRelayStats;
}

function checkLatency(ms: number, what: string): void {
  if (!(ms >= 0) || !Number.isFinite(ms))
    throw new RangeError(`${what} must be a finite number ≥ 0 (ms), got ${ms}`);
}

function checkRate(bytesPerS: number, what: string): void {
  if (!(bytesPerS > 0))
    throw new RangeError(`${what} must be > 0 bytes/s (Infinity = unlimited), got ${bytesPerS}`);
}

function checkLoss(p: number, what: string): void {
  if (!(p >= 0 && p < 1)) throw new RangeError(`${what} must be in [0, 1), got ${p}`);
}

function checkPeerId(id: string, what: string): void {
  if (typeof id !== 'string' || id.length === 0) throw new TypeError(`${what} must be a non-empty string`);
}

const pairValue = (v: PairValue, a: string, b: string): number => (typeof v === 'number' ? v : v(a, b));

/** Unordered key of a pair of peers. */
export function pairKey(a: string, b: string): string {
  return a < b ? `${a}\n${b}` : `${b}\n${a}`;
}

/** Ordered key of a direction. */
function dirKey(from: string, to: string): string {
  return `${from}\n${to}`;
}

const newStats = (): MemoryPeerStats => ({
  sentBytes: 0,
  sentMessages: 0,
  receivedBytes: 0,
  receivedMessages: 0,
  discardedBytes: 0,
  discardedMessages: 0,
});

export class MemoryNetwork {
  readonly config: Readonly<MemoryNetworkConfig>;
  /** `setLatency` overrides (only the pairs given). */
  readonly #latencyMs = new Map<string, number>();
  readonly #peers = new Map<string, PeerState>();
  /** `setLinkBandwidth` servers (only the directions given). */
  readonly #linkServers = new Map<string, FifoServer<Packet>>();
  readonly #relays = new Map<string, TurnRelay>();
  readonly #partitions = new Set<string>();
  readonly #cut = new Set<string>();
  /** Open links by signaling token. */
  readonly #links = new Map<string, MemoryLink>();
  /** Links whose remote closed while a partition swallowed the notice. */
  readonly #lostCloseNotices = new Set<MemoryLink>();
  #nextToken = 1;
  /** Bumped when a link server appears: links recompute their sender path. */
  #serversVersion = 0;
  #relayedBytes = 0;

  /** Sender stages: the next server of the packet's path, or the wire. */
  readonly #senderDone = (p: Packet): void => {
    if (p.stage < p.path.length) p.path[p.stage++]!.push(p);
    else p.link.onWire(p);
  };
  /** A sender-side server drops what a destroyed link had queued. */
  readonly #senderDiscard = (p: Packet): boolean => {
    if (!p.link.closed) return false;
    this.discarded(p);
    return true;
  };
  readonly #relayDone = (p: Packet): void => {
    const receiver = p.link.remote;
    if (receiver && !receiver.closed) receiver.arrive(p);
    else this.discarded(p);
  };
  readonly #downlinkDone = (p: Packet): void => {
    p.link.remote!.deliver(p);
  };

  constructor(
    readonly clock: Clock,
    config: Partial<MemoryNetworkConfig> = {},
  ) {
    const c = { ...DEFAULT_MEMORY_NETWORK, ...config };
    checkLatency(c.latencyMs, 'latencyMs');
    checkRate(c.uploadBytesPerS, 'uploadBytesPerS');
    checkRate(c.downloadBytesPerS, 'downloadBytesPerS');
    if (!(c.lowWaterMarkBytes >= 0) || !Number.isFinite(c.lowWaterMarkBytes))
      throw new RangeError(`lowWaterMarkBytes must be a finite number ≥ 0, got ${c.lowWaterMarkBytes}`);
    if (typeof c.handshakeMs === 'number') checkLatency(c.handshakeMs, 'handshakeMs');
    checkLatency(c.jitterMs, 'jitterMs');
    if (typeof c.lossRate === 'number') checkLoss(c.lossRate, 'lossRate');
    if (!(c.iceFailureMs >= 0)) throw new RangeError(`iceFailureMs must be ≥ 0, got ${c.iceFailureMs}`);
    if (c.latencyModel !== undefined && typeof c.latencyModel !== 'function')
      throw new TypeError('latencyModel must be a function (a, b) => ms');
    if ((c.jitterMs > 0 || c.lossRate !== 0) && typeof c.random !== 'function')
      throw new Error('MemoryNetwork: jitterMs and lossRate need a seeded `random` in the config');
    this.config = Object.freeze(c);
  }

  /** The `Transport` of one peer of this network. */
  transport(peerId: string): Transport {
    checkPeerId(peerId, 'peerId');
    this.peer(peerId);
    return {
      createLink: (opts) => this.#createLink(peerId, opts),
    };
  }

  /** One-way latency between `a` and `b` (both directions), for links and messages from now on. */
  setLatency(a: string, b: string, ms: number): void {
    checkLatency(ms, 'latency');
    this.#latencyMs.set(pairKey(a, b), ms);
  }

  /** The pair's one-way latency before any relay: the override, else the model, else the default. */
  latencyMs(a: string, b: string): number {
    return this.#latencyMs.get(pairKey(a, b)) ?? this.#modelLatencyMs(a, b);
  }

  /** Upload bandwidth of a peer, shared by all its links (FIFO). Applies from the next message served. */
  setUploadBandwidth(peerId: string, bytesPerS: number): void {
    checkRate(bytesPerS, 'upload bandwidth');
    this.peer(peerId).uplink.rateBytesPerS = bytesPerS;
  }

  /**
   * Download bandwidth of a peer, shared by all its links: a FIFO after the latency (bytes reach it
   * one latency after they left the sender, then are serialized at this rate). Applies from the next
   * message served.
   */
  setDownloadBandwidth(peerId: string, bytesPerS: number): void {
    checkRate(bytesPerS, 'download bandwidth');
    const peer = this.peer(peerId);
    if (peer.downlink) peer.downlink.rateBytesPerS = bytesPerS;
    else peer.downlink = new FifoServer(this.clock, bytesPerS, this.#downlinkDone);
  }

  /** Bandwidth of the direction `from` → `to` alone (in series with `from`'s upload). */
  setLinkBandwidth(from: string, to: string, bytesPerS: number): void {
    checkRate(bytesPerS, 'link bandwidth');
    const key = dirKey(from, to);
    const server = this.#linkServers.get(key);
    if (server) server.rateBytesPerS = bytesPerS;
    else {
      this.#linkServers.set(
        key,
        new FifoServer(this.clock, bytesPerS, this.#senderDone, this.#senderDiscard),
      );
      this.#serversVersion++;
    }
  }

  /** The NAT a peer is behind (default 'open'), for links whose handshake completes from now on. */
  setNatType(peerId: string, natType: NatType): void {
    if (!NAT_TYPES.includes(natType)) throw new TypeError(`unknown NAT type ${String(natType)}`);
    this.peer(peerId).nat = natType;
  }

  natType(peerId: string): NatType {
    return this.#peers.get(peerId)?.nat ?? 'open';
  }

  /** Adds a TURN relay; peers use the first one added unless `setTurnRelay` says otherwise. */
  addTurnRelay(relay: TurnRelayConfig): void {
    checkPeerId(relay.id, 'relay id');
    if (this.#relays.has(relay.id)) throw new Error(`TURN relay ${relay.id} already exists`);
    checkRate(relay.uploadBytesPerS, 'relay uploadBytesPerS');
    checkLatency(relay.latencyMs, 'relay latencyMs');
    const stats: TurnRelayStats = { relayedBytes: 0, relayedMessages: 0, queued: 0 };
    const server = new FifoServer<Packet>(this.clock, relay.uploadBytesPerS, (p) => {
      stats.relayedBytes += p.size;
      stats.relayedMessages++;
      this.#relayedBytes += p.size;
      this.#relayDone(p);
    });
    this.#relays.set(relay.id, { config: Object.freeze({ ...relay }), server, stats });
  }

  /** The TURN relay `peerId` allocates on when it needs one. */
  setTurnRelay(peerId: string, relayId: string): void {
    if (!this.#relays.has(relayId)) throw new Error(`unknown TURN relay ${relayId}`);
    this.peer(peerId).relayId = relayId;
  }

  turnRelayStats(relayId: string): TurnRelayStats | undefined {
    const relay = this.#relays.get(relayId);
    return relay && { ...relay.stats, queued: relay.server.queued };
  }

  /** Silently drops everything between `a` and `b` (both directions) until `heal`. */
  partition(a: string, b: string): void {
    this.#partitions.add(pairKey(a, b));
  }

  heal(a: string, b: string): void {
    this.#partitions.delete(pairKey(a, b));
    this.#redeliverCloseNotices();
  }

  /** Silently drops everything to and from `peerId` (a frozen or vanished peer) until `restore`. */
  cut(peerId: string): void {
    this.#cut.add(peerId);
  }

  restore(peerId: string): void {
    this.#cut.delete(peerId);
    this.#redeliverCloseNotices();
  }

  isBlocked(a: string, b: string): boolean {
    if (this.#cut.size === 0 && this.#partitions.size === 0) return false;
    return this.#cut.has(a) || this.#cut.has(b) || this.#partitions.has(pairKey(a, b));
  }

  /** Links created and not yet closed. */
  get openLinks(): number {
    return this.#links.size;
  }

  /** What `peerId` sent, received and lost (zeros for a peer never seen). */
  stats(peerId: string): MemoryPeerStats {
    const s = this.#peers.get(peerId)?.stats;
    return s ? { ...s } : newStats();
  }

  /** Sums over every peer; sent = received + discarded + in flight. */
  totals(): MemoryNetworkTotals {
    const t = newStats();
    for (const { stats: s } of this.#peers.values()) {
      t.sentBytes += s.sentBytes;
      t.sentMessages += s.sentMessages;
      t.receivedBytes += s.receivedBytes;
      t.receivedMessages += s.receivedMessages;
      t.discardedBytes += s.discardedBytes;
      t.discardedMessages += s.discardedMessages;
    }
    return {
      ...t,
      inFlightBytes: t.sentBytes - t.receivedBytes - t.discardedBytes,
      inFlightMessages: t.sentMessages - t.receivedMessages - t.discardedMessages,
      relayedBytes: this.#relayedBytes,
      peers: this.#peers.size,
      openLinks: this.#links.size,
    };
  }

  /** @internal a peer's state, created on first use. */
  peer(peerId: string): PeerState {
    let peer = this.#peers.get(peerId);
    if (!peer) {
      const down = this.config.downloadBytesPerS;
      peer = {
        id: peerId,
        uplink: new FifoServer(
          this.clock,
          this.config.uploadBytesPerS,
          this.#senderDone,
          this.#senderDiscard,
        ),
        downlink: down === Infinity ? undefined : new FifoServer(this.clock, down, this.#downlinkDone),
        nat: 'open',
        relayId: undefined,
        stats: newStats(),
      };
      this.#peers.set(peerId, peer);
    }
    return peer;
  }

  /** @internal the version of the link servers (a link's cached sender path is stale when it changes). */
  get serversVersion(): number {
    return this.#serversVersion;
  }

  /** @internal the sender-side servers of `from` → `to`, in order. */
  senderPath(from: PeerState, to: string): FifoServer<Packet>[] {
    // A link server exists only once a link bandwidth was set (skipping it never reorders a link's messages).
    const link = this.#linkServers.size === 0 ? undefined : this.#linkServers.get(dirKey(from.id, to));
    return link ? [link, from.uplink] : [from.uplink];
  }

  /** @internal starts a packet on its sender path. */
  send(p: Packet): void {
    this.#senderDone(p);
  }

  /** @internal a packet left the sender's servers (or a close notice left): relay, then latency. */
  transit(p: Packet): void {
    const receiver = p.link.remote;
    if (!receiver || receiver.closed) return this.discarded(p);
    const relay = p.link.path?.relay;
    if (relay) relay.server.push(p);
    else receiver.arrive(p);
  }

  /** @internal counts a packet that will never be delivered. */
  discarded(p: Packet): void {
    if (!p.bytes) return;
    const s = p.link.peerState.stats;
    s.discardedBytes += p.size;
    s.discardedMessages++;
  }

  /** @internal one-way latency of a paired link now, relay detour included. */
  oneWayMs(path: PairPath): number {
    const base =
      this.#latencyMs.size === 0 ? path.latencyMs : (this.#latencyMs.get(path.key) ?? path.latencyMs);
    return path.relay ? base + path.relay.config.latencyMs : base;
  }

  /** @internal the state two ends share once the handshake pairs them (called once per link). */
  pair(initiator: MemoryLink, responder: MemoryLink): PairPath {
    const a = initiator.localId;
    const b = responder.localId;
    const latencyMs = this.#modelLatencyMs(a, b);
    const handshakeMs = pairValue(this.config.handshakeMs, a, b);
    checkLatency(handshakeMs, 'handshakeMs');
    const lossRate = pairValue(this.config.lossRate, a, b);
    checkLoss(lossRate, 'lossRate');
    const natA = initiator.peerState.nat;
    const natB = responder.peerState.nat;
    const path: PairPath = {
      key: pairKey(a, b),
      latencyMs,
      handshakeMs,
      lossRate,
      initiatorNat: natA,
      responderNat: natB,
      relays: [false, false],
      relay: undefined,
      reachable: true,
    };
    if (!connectsDirectly(natA, natB)) {
      const sides = relayingSides(natA, natB);
      const first = sides[0] ? initiator.peerState : responder.peerState;
      const relay = this.#relayOf(first);
      if (relay) {
        path.relays = sides;
        path.relay = relay;
      } else path.reachable = false;
    }
    return path;
  }

  /** @internal */
  findLink(token: string): MemoryLink | undefined {
    return this.#links.get(token);
  }

  /** @internal */
  linkClosed(link: MemoryLink): void {
    this.#links.delete(link.token);
    this.#lostCloseNotices.delete(link);
  }

  /** @internal */
  closeNoticeLost(link: MemoryLink): void {
    this.#lostCloseNotices.add(link);
  }

  #modelLatencyMs(a: string, b: string): number {
    const model = this.config.latencyModel;
    if (!model) return this.config.latencyMs;
    const ms = model(a, b);
    checkLatency(ms, `latencyModel(${a}, ${b})`);
    return ms;
  }

  #relayOf(peer: PeerState): TurnRelay | undefined {
    if (peer.relayId !== undefined) return this.#relays.get(peer.relayId);
    return this.#relays.values().next().value; // the first added
  }

  #redeliverCloseNotices(): void {
    for (const link of [...this.#lostCloseNotices]) {
      if (this.isBlocked(link.localId, link.remoteId)) continue;
      this.#lostCloseNotices.delete(link);
      link.remoteClosedNotice();
    }
  }

  #createLink(
    peerId: string,
    opts: { localId: string; remoteId: string; initiator: boolean; iceServers: IceServer[] },
  ): PeerLink {
    if (opts.localId !== peerId)
      throw new Error(`createLink: localId ${opts.localId} is not this transport's peer (${peerId})`);
    checkPeerId(opts.remoteId, 'remoteId');
    if (opts.remoteId === opts.localId)
      throw new Error(`createLink: a peer cannot link to itself (${peerId})`);
    const link = new MemoryLink(
      this,
      this.peer(peerId),
      `m${this.#nextToken++}`,
      opts.remoteId,
      opts.initiator,
    );
    this.#links.set(link.token, link);
    return link;
  }
}
