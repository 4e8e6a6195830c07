/**
 * One end of an in-memory link (memory-transport.ts has the model; users see `MemoryNetwork`): the
 * signaling handshake, sending through the sender's servers, ordered arrival after the latency (with
 * jitter and loss), the receiver's downlink, and close notices.
 */
import { MAX_MESSAGE_BYTES, TypedEmitter } from '../../protocol/index.ts';
import type { LinkCloseReason, NatType, SignalData } from '../../protocol/index.ts';
import type { MemoryNetwork, PeerState, TurnRelay } from './memory-transport.ts';
import { routeOf } from './memory-nat.ts';
import { Fifo, type FifoServer } from './memory-queues.ts';
import { DESTROYED, REMOTE_CLOSED, type LinkRoute, type PeerLink, type PeerLinkEvents } from './seams.ts';

/** @internal a message (or, without bytes, a close notice) travelling from `link` to its remote end. */
export interface Packet {
  /** The sending end. */
  readonly link: MemoryLink;
  /** Null for a close notice. */
  readonly bytes: Uint8Array | null;
  readonly size: number;
  /** The sender-side servers, and the index of the next one. */
  readonly path: readonly FifoServer<Packet>[];
  stage: number;
  /** Arrives at the same instant as the packet before it on the link, and with it: no timer of its own. */
  grouped: boolean;
}

/** @internal what both ends of a link share once the handshake paired them. */
export interface PairPath {
  /** The pair's key for `setLatency` overrides. */
  readonly key: string;
  /** One-way latency from the model or the default, before overrides and relay (ms). */
  readonly latencyMs: number;
  readonly handshakeMs: number;
  readonly lossRate: number;
  readonly initiatorNat: NatType;
  readonly responderNat: NatType;
  /** Which sides use a TURN relay: [initiator, responder]. */
  relays: [boolean, boolean];
  relay: TurnRelay | undefined;
  /** False when ICE cannot succeed (incompatible NATs, no relay). */
  reachable: boolean;
}

const OFFER_PREFIX = 'memory-offer:';
const ANSWER_PREFIX = 'memory-answer:';
/** A signal that does not fit the link closes it with this reason. */
const invalidSignal = (why: string): LinkCloseReason => `memory-signal-invalid: ${why}`;
/** What simple-peer reports when ICE fails (its error code and message). */
export const ICE_FAILURE: LinkCloseReason = 'webrtc-error: ERR_ICE_CONNECTION_FAILURE Ice connection failed.';
const NO_SERVERS: readonly FifoServer<Packet>[] = [];

/**
 * Copies of sent messages are carved out of shared slabs: one ArrayBuffer per {@link SLAB_BYTES}
 * instead of one per message (each ArrayBuffer costs an allocation outside the heap and work for the
 * garbage collector, the bulk of a simulation's time at thousands of peers). A slab lives as long as
 * any message cut from it; messages are short-lived (the receiver copies what it keeps).
 */
const SLAB_BYTES = 64 * 1024;
let slab = new Uint8Array(SLAB_BYTES);
let slabUsed = 0;

function copyToSlab(bytes: Uint8Array): Uint8Array {
  const size = bytes.byteLength;
  if (size > SLAB_BYTES / 4) {
    // Large: a buffer of its own. Not `bytes.slice()`: a Node Buffer's is a view of the caller's memory.
    const own = new Uint8Array(size);
    own.set(bytes); // a memcpy (the copying constructor goes element by element)
    return own;
  }
  if (slabUsed + size > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const copy = slab.subarray(slabUsed, slabUsed + size);
  copy.set(bytes);
  slabUsed += (size + 7) & ~7;
  return copy;
}

export class MemoryLink extends TypedEmitter<PeerLinkEvents> implements PeerLink {
  readonly localId: string;
  #connected = false;
  #closed = false;
  /** The other end, once the handshake paired them. */
  #peer: MemoryLink | undefined;
  /** Shared with the other end once paired. */
  #path: PairPath | undefined;
  #bufferedBytes = 0;
  #aboveLowWater = false;
  /** Sender-side servers, cached for the network's `serversVersion`. */
  #senderPath: FifoServer<Packet>[] | undefined;
  #senderPathVersion = -1;
  /**
   * Packets travelling to this end, in order. Packets due at the same instant form a group with one
   * arrival timer, which pops the group (a sender's burst of chunks arrives together when nothing
   * jitters it: one timer instead of one per message).
   */
  readonly #inbound = new Fifo<Packet>();
  /** Arrival time of the last packet scheduled to this end (keeps order under jitter and loss). */
  #lastArrivalMs = -Infinity;
  /** The last group's timer has not fired yet: a packet due at the same instant may join it. */
  #lastGroupPending = false;
  /**
   * Bound once per link, in the constructor: tsx compiles with esbuild's `keepNames`, which gives a
   * field initializer's function its name by a `defineProperty` per instance (time and memory).
   */
  readonly #onArrival: () => void;

  constructor(
    private readonly network: MemoryNetwork,
    /** @internal */
    readonly peerState: PeerState,
    readonly token: string,
    readonly remoteId: string,
    readonly initiator: boolean,
  ) {
    super();
    this.#onArrival = () => this.#arrived();
    this.localId = peerState.id;
    if (initiator)
      network.clock.setTimeout(() => {
        if (!this.#closed) this.emit('signal', { type: 'offer', sdp: OFFER_PREFIX + token });
      }, 0);
  }

  get connected(): boolean {
    return this.#connected && !this.#closed;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get bufferedAmount(): number {
    return this.#bufferedBytes;
  }

  /** @internal the other end, once paired. */
  get remote(): MemoryLink | undefined {
    return this.#peer;
  }

  /** @internal */
  get path(): PairPath | undefined {
    return this.#path;
  }

  route(): Promise<LinkRoute | undefined> {
    const path = this.#path;
    if (!this.connected || !path) return Promise.resolve(undefined);
    return Promise.resolve(
      this.initiator
        ? routeOf(path.initiatorNat, path.responderNat, path.relays[0], path.relays[1])
        : routeOf(path.responderNat, path.initiatorNat, path.relays[1], path.relays[0]),
    );
  }

  signal(data: SignalData): void {
    if (this.#closed) return;
    if (
      !('type' in data) ||
      data.type === 'candidate' ||
      data.type === 'pranswer' ||
      data.type === 'rollback'
    )
      return;
    const sdp = data.sdp ?? '';
    if (data.type === 'offer') {
      if (this.initiator || this.#peer) return this.destroy(invalidSignal('unexpected offer'));
      if (!sdp.startsWith(OFFER_PREFIX)) return this.destroy(invalidSignal('malformed offer'));
      const offerer = this.network.findLink(sdp.slice(OFFER_PREFIX.length));
      if (!offerer) return; // the offerer is gone: like ICE that never succeeds, the handshake just stalls
      if (offerer.localId !== this.remoteId || offerer.remoteId !== this.localId || !offerer.initiator)
        return this.destroy(invalidSignal('offer from another link'));
      this.#peer = offerer;
      this.network.clock.setTimeout(() => {
        if (!this.#closed) this.emit('signal', { type: 'answer', sdp: ANSWER_PREFIX + this.token });
      }, 0);
      return;
    }
    // answer
    if (!this.initiator || this.#peer) return this.destroy(invalidSignal('unexpected answer'));
    if (!sdp.startsWith(ANSWER_PREFIX)) return this.destroy(invalidSignal('malformed answer'));
    const answerer = this.network.findLink(sdp.slice(ANSWER_PREFIX.length));
    if (!answerer) return; // the answerer is gone: the handshake stalls
    if (answerer.#peer !== this) return this.destroy(invalidSignal('answer from another link'));
    this.#peer = answerer;
    const path = this.network.pair(this, answerer);
    this.#path = path;
    answerer.#path = path;
    const clock = this.network.clock;
    if (!path.reachable) {
      // ICE finds no candidate pair: no connect; both ends fail once their ICE agents give up.
      const failMs = this.network.config.iceFailureMs;
      if (Number.isFinite(failMs))
        clock.setTimeout(() => {
          if (!this.#closed) this.#close(ICE_FAILURE);
          if (!answerer.#closed) answerer.#close(ICE_FAILURE);
        }, failMs);
      return;
    }
    // ICE + DTLS, then the handshake crosses the network: answerer connected after one latency,
    // initiator after two.
    const latencyMs = this.network.oneWayMs(path);
    clock.setTimeout(() => {
      if (this.#closed || this.network.isBlocked(this.localId, this.remoteId)) return;
      clock.setTimeout(() => {
        if (!this.network.isBlocked(this.localId, this.remoteId)) this.#markConnected();
      }, latencyMs);
      answerer.#markConnected();
    }, path.handshakeMs + latencyMs);
  }

  send(bytes: Uint8Array): void {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('send: bytes must be a Uint8Array');
    if (bytes.byteLength > MAX_MESSAGE_BYTES)
      throw new TypeError(`send: message of ${bytes.byteLength} bytes > ${MAX_MESSAGE_BYTES}`);
    if (this.#closed) return;
    if (!this.#connected) throw new Error('send: link not connected yet');
    const size = bytes.byteLength;
    const copy = copyToSlab(bytes);
    this.#bufferedBytes += size;
    const stats = this.peerState.stats;
    stats.sentBytes += size;
    stats.sentMessages++;
    if (this.#senderPathVersion !== this.network.serversVersion) {
      this.#senderPath = this.network.senderPath(this.peerState, this.remoteId);
      this.#senderPathVersion = this.network.serversVersion;
    }
    this.network.send({ link: this, bytes: copy, size, path: this.#senderPath!, stage: 0, grouped: false });
    // Set after sending, so that a message put on the wire at once never triggers a drain.
    if (this.#bufferedBytes > this.network.config.lowWaterMarkBytes) this.#aboveLowWater = true;
  }

  destroy(reason = DESTROYED): void {
    if (this.#closed) return;
    this.#close(reason);
    const peer = this.#peer;
    // No path (ICE failed), no notice: the remote fails on its own.
    if (peer && !peer.#closed && peer.#peer === this && this.#path?.reachable !== false)
      this.network.transit({ link: this, bytes: null, size: 0, path: NO_SERVERS, stage: 0, grouped: false });
  }

  /** @internal the last sender-side server transmitted a message of this link. */
  onWire(p: Packet): void {
    this.#bufferedBytes -= p.size;
    this.network.transit(p);
    if (this.#aboveLowWater && this.#bufferedBytes <= this.network.config.lowWaterMarkBytes) {
      this.#aboveLowWater = false;
      this.emit('drain');
    }
  }

  /** @internal a partition swallowed the remote's close notice and has healed. */
  remoteClosedNotice(): void {
    const peer = this.#peer;
    if (!this.#closed && peer)
      this.arrive({ link: peer, bytes: null, size: 0, path: NO_SERVERS, stage: 0, grouped: false });
  }

  /** @internal schedules a packet's arrival at this end: one latency (jitter, loss) from now, in order. */
  arrive(p: Packet): void {
    const network = this.network;
    const clock = network.clock;
    const path = this.#path!;
    const nowMs = clock.now();
    const oneWayMs = network.oneWayMs(path);
    let delayMs = oneWayMs;
    if (p.bytes) {
      const { jitterMs, random } = network.config;
      if (jitterMs > 0) delayMs += random!() * jitterMs;
      // Each loss costs a retransmission one round trip later (SCTP is reliable).
      if (path.lossRate > 0) while (random!() < path.lossRate) delayMs += 2 * oneWayMs;
    }
    const arrivalMs = Math.max(nowMs + delayMs, this.#lastArrivalMs);
    p.grouped = arrivalMs === this.#lastArrivalMs && this.#lastGroupPending;
    this.#lastArrivalMs = arrivalMs;
    this.#inbound.push(p);
    if (p.grouped) return;
    this.#lastGroupPending = true;
    clock.setTimeout(this.#onArrival, arrivalMs - nowMs);
  }

  /** @internal the packet cleared the receiver's downlink (or arrived, without one). */
  deliver(p: Packet): void {
    if (this.#closed) return this.network.discarded(p);
    if (!p.bytes) return this.#close(REMOTE_CLOSED);
    this.#markConnected(); // the handshake's last step never lags the first data (real timers may reorder)
    const stats = this.peerState.stats;
    stats.receivedBytes += p.size;
    stats.receivedMessages++;
    this.emit('data', p.bytes);
  }

  /** A group's timer: its packets arrive in order (one may close the link, or join the group meanwhile). */
  #arrived(): void {
    let first = true;
    while (!this.#closed && this.#inbound.size > 0) {
      if (!first && !this.#inbound.peek().grouped) break; // the next group, with a timer of its own
      first = false;
      const p = this.#inbound.shift();
      if (this.network.isBlocked(this.localId, this.remoteId)) {
        if (!p.bytes) this.network.closeNoticeLost(this);
        else this.network.discarded(p);
        continue;
      }
      const downlink = this.peerState.downlink;
      if (downlink) downlink.push(p);
      else this.deliver(p);
    }
    // Nothing left: the group just delivered was the last one, and no packet may join it any more.
    if (this.#inbound.size === 0) this.#lastGroupPending = false;
  }

  #markConnected(): void {
    if (this.#connected || this.#closed) return;
    this.#connected = true;
    this.emit('connect');
  }

  #close(reason: string): void {
    this.#closed = true;
    this.#bufferedBytes = 0;
    this.#aboveLowWater = false;
    for (const p of this.#inbound.drain()) this.network.discarded(p);
    this.#lastGroupPending = false;
    this.network.linkClosed(this);
    this.emit('close', reason);
  }
}
