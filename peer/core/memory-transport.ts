/**
 * An in-memory network of peers for tests and the simulator: the `Transport` seam without WebRTC.
 *
 * - Signaling goes through the normal `signal` events (the engine relays them via the tracker): the
 *   initiator emits an `offer`, the answerer answers, the answerer connects one latency after the
 *   answer reaches the initiator and the initiator one latency later (the handshake's round trip).
 * - One-way latency per pair of peers; upload bandwidth per peer (shared by all its links) and per
 *   link direction, each a FIFO server: a message goes through the link's then the peer's queue and is
 *   "on the wire" when both have transmitted it. `bufferedAmount` counts a link's bytes not yet on the
 *   wire (whole messages); `drain` fires when it falls from above the low-water mark to at or below it.
 * - `partition(a, b)` / `cut(peer)` make links silent: messages (and close notices) are dropped, nobody
 *   is told, no `close`. A handshake across a partition never completes (the engine's connect timeout
 *   handles it, as for ICE that never succeeds). `heal` / `restore` let traffic through again, and a
 *   close notice lost meanwhile is then delivered.
 * - Messages arrive whole and in order; queued-but-not-on-the-wire bytes are discarded on `destroy`
 *   (as simple-peer's immediate `pc.close()` does); bytes already on the wire still arrive, then the
 *   remote gets `close('remote-closed')`.
 *
 * All time comes from the injected clock (ManualClock or the real one). No timers of its own.
 */
import { MAX_MESSAGE_BYTES, TypedEmitter } from '../../protocol/index.ts';
import type { IceServer, LinkCloseReason, SignalData } from '../../protocol/index.ts';
import {
  DESTROYED,
  REMOTE_CLOSED,
  type Clock,
  type PeerLink,
  type PeerLinkEvents,
  type Transport,
} from './seams.ts';

export interface MemoryNetworkConfig {
  /** Default one-way latency between two peers (ms); `setLatency` overrides per pair. */
  latencyMs: number;
  /** Default upload bandwidth of every peer (bytes/s, shared by its links); Infinity = unlimited. */
  uploadBytesPerS: number;
  /** `drain` fires when a link's `bufferedAmount` falls to this or below. */
  lowWaterMarkBytes: number;
}

export const DEFAULT_MEMORY_NETWORK: MemoryNetworkConfig = {
  latencyMs: 10,
  uploadBytesPerS: Infinity,
  lowWaterMarkBytes: 256 * 1024,
};

const OFFER_PREFIX = 'memory-offer:';
const ANSWER_PREFIX = 'memory-answer:';
/** A signal that does not fit the link closes it with this reason. */
const invalidSignal = (why: string): LinkCloseReason => `memory-signal-invalid: ${why}`;

function checkLatency(ms: number, what: string): void {
  if (!(ms >= 0) || !Number.isFinite(ms))
    throw new RangeError(`${what} must be a finite number ≥ 0 (ms), got ${ms}`);
}

function checkRate(bytesPerS: number, what: string): void {
  if (!(bytesPerS > 0))
    throw new RangeError(`${what} must be > 0 bytes/s (Infinity = unlimited), got ${bytesPerS}`);
}

function checkPeerId(id: string, what: string): void {
  if (typeof id !== 'string' || id.length === 0) throw new TypeError(`${what} must be a non-empty string`);
}

/** Unordered key of a pair of peers. */
function pairKey(a: string, b: string): string {
  return a < b ? `${a}\n${b}` : `${b}\n${a}`;
}

/** Ordered key of a direction. */
function dirKey(from: string, to: string): string {
  return `${from}\n${to}`;
}

interface Outgoing {
  link: MemoryLink;
  bytes: Uint8Array;
  /** Remaining servers, first one next. */
  path: Uplink[];
}

/** A FIFO server transmitting whole messages at a rate read when each message starts. */
class Uplink {
  readonly #queue: Outgoing[] = [];
  #head = 0;
  #busy = false;

  constructor(
    private readonly clock: Clock,
    private readonly rate: () => number,
  ) {}

  push(item: Outgoing): void {
    this.#queue.push(item);
    if (!this.#busy) this.#next();
  }

  #next(): void {
    while (this.#head < this.#queue.length) {
      const item = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined as unknown as Outgoing;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue.splice(0, this.#head);
        this.#head = 0;
      }
      if (item.link.closed) continue; // discarded on destroy
      const rate = this.rate();
      if (!Number.isFinite(rate)) {
        forward(item);
        continue;
      }
      this.#busy = true;
      this.clock.setTimeout(
        () => {
          this.#busy = false;
          if (!item.link.closed) forward(item);
          this.#next();
        },
        (item.bytes.byteLength / rate) * 1000,
      );
      return;
    }
  }
}

/** Hands a message to its next server, or puts it on the wire. */
function forward(item: Outgoing): void {
  const next = item.path.shift();
  if (next) next.push(item);
  else item.link.onWire(item.bytes);
}

export class MemoryNetwork {
  readonly config: Readonly<MemoryNetworkConfig>;
  readonly #latencyMs = new Map<string, number>();
  readonly #peerUploadBytesPerS = new Map<string, number>();
  readonly #linkUploadBytesPerS = new Map<string, number>();
  readonly #peerUplinks = new Map<string, Uplink>();
  readonly #linkUplinks = new Map<string, Uplink>();
  readonly #partitions = new Set<string>();
  readonly #cut = new Set<string>();
  /** Open links by signaling token. */
  readonly #links = new Map<string, MemoryLink>();
  /** Links whose remote closed while a partition swallowed the notice. */
  readonly #lostCloseNotices = new Set<MemoryLink>();
  #nextToken = 1;

  constructor(
    readonly clock: Clock,
    config: Partial<MemoryNetworkConfig> = {},
  ) {
    const c = { ...DEFAULT_MEMORY_NETWORK, ...config };
    checkLatency(c.latencyMs, 'latencyMs');
    checkRate(c.uploadBytesPerS, 'uploadBytesPerS');
    if (!(c.lowWaterMarkBytes >= 0) || !Number.isFinite(c.lowWaterMarkBytes))
      throw new RangeError(`lowWaterMarkBytes must be a finite number ≥ 0, got ${c.lowWaterMarkBytes}`);
    this.config = Object.freeze(c);
  }

  /** The `Transport` of one peer of this network. */
  transport(peerId: string): Transport {
    checkPeerId(peerId, 'peerId');
    return {
      createLink: (opts) => this.#createLink(peerId, opts),
    };
  }

  /** One-way latency between `a` and `b` (both directions), for links and messages from now on. */
  setLatency(a: string, b: string, ms: number): void {
    checkLatency(ms, 'latency');
    this.#latencyMs.set(pairKey(a, b), ms);
  }

  latencyMs(a: string, b: string): number {
    return this.#latencyMs.get(pairKey(a, b)) ?? this.config.latencyMs;
  }

  /** Upload bandwidth of a peer, shared by all its links (FIFO). Applies from the next message served. */
  setUploadBandwidth(peerId: string, bytesPerS: number): void {
    checkRate(bytesPerS, 'upload bandwidth');
    this.#peerUploadBytesPerS.set(peerId, bytesPerS);
  }

  /** Bandwidth of the direction `from` → `to` alone (in series with `from`'s upload). */
  setLinkBandwidth(from: string, to: string, bytesPerS: number): void {
    checkRate(bytesPerS, 'link bandwidth');
    const key = dirKey(from, to);
    this.#linkUploadBytesPerS.set(key, bytesPerS);
    if (!this.#linkUplinks.has(key))
      this.#linkUplinks.set(
        key,
        new Uplink(this.clock, () => this.#linkUploadBytesPerS.get(key) ?? Infinity),
      );
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
    return this.#cut.has(a) || this.#cut.has(b) || this.#partitions.has(pairKey(a, b));
  }

  /** Links created and not yet closed. */
  get openLinks(): number {
    return this.#links.size;
  }

  /** @internal the servers a message from `from` to `to` goes through, in order. */
  uplinkPath(from: string, to: string): Uplink[] {
    let peer = this.#peerUplinks.get(from);
    if (!peer) {
      peer = new Uplink(this.clock, () => this.#peerUploadBytesPerS.get(from) ?? this.config.uploadBytesPerS);
      this.#peerUplinks.set(from, peer);
    }
    // A link server exists only once a link bandwidth was set (skipping it never reorders a link's messages).
    const key = dirKey(from, to);
    const link = this.#linkUplinks.get(key);
    return link ? [link, peer] : [peer];
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
    const link = new MemoryLink(this, `m${this.#nextToken++}`, opts.localId, opts.remoteId, opts.initiator);
    this.#links.set(link.token, link);
    return link;
  }
}

type Inbound = { kind: 'data'; bytes: Uint8Array } | { kind: 'close' };

/** One end of an in-memory link. */
export class MemoryLink extends TypedEmitter<PeerLinkEvents> implements PeerLink {
  #connected = false;
  #closed = false;
  /** The other end, once the handshake paired them. */
  #peer: MemoryLink | undefined;
  #bufferedBytes = 0;
  #aboveLowWater = false;
  /** Messages travelling to this end, in order; each has one delivery timer that pops the head. */
  readonly #inbound: Inbound[] = [];
  #inboundHead = 0;
  /** Arrival time of the last message scheduled to this end (keeps order if latency changes). */
  #lastArrivalMs = -Infinity;

  constructor(
    private readonly network: MemoryNetwork,
    readonly token: string,
    readonly localId: string,
    readonly remoteId: string,
    readonly initiator: boolean,
  ) {
    super();
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
    // The handshake crosses the network: answerer connected after one latency, initiator after two.
    const latencyMs = this.network.latencyMs(this.localId, this.remoteId);
    const clock = this.network.clock;
    clock.setTimeout(() => {
      if (this.#closed || this.network.isBlocked(this.localId, this.remoteId)) return;
      clock.setTimeout(() => {
        if (!this.network.isBlocked(this.localId, this.remoteId)) this.#markConnected();
      }, latencyMs);
      answerer.#markConnected();
    }, latencyMs);
  }

  send(bytes: Uint8Array): void {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('send: bytes must be a Uint8Array');
    if (bytes.byteLength > MAX_MESSAGE_BYTES)
      throw new TypeError(`send: message of ${bytes.byteLength} bytes > ${MAX_MESSAGE_BYTES}`);
    if (this.#closed) return;
    if (!this.#connected) throw new Error('send: link not connected yet');
    // A fresh Uint8Array: `slice` of a Node Buffer would be a view sharing the caller's memory.
    const copy = new Uint8Array(bytes);
    this.#bufferedBytes += copy.byteLength;
    forward({ link: this, bytes: copy, path: this.network.uplinkPath(this.localId, this.remoteId) });
    // Set after forwarding, so that a message put on the wire at once never triggers a drain.
    if (this.#bufferedBytes > this.network.config.lowWaterMarkBytes) this.#aboveLowWater = true;
  }

  destroy(reason = DESTROYED): void {
    if (this.#closed) return;
    this.#close(reason);
    const peer = this.#peer;
    if (peer && !peer.#closed && peer.#peer === this) peer.#enqueue({ kind: 'close' });
  }

  /** @internal the last server transmitted a message of this link. */
  onWire(bytes: Uint8Array): void {
    this.#bufferedBytes -= bytes.byteLength;
    const peer = this.#peer;
    if (peer && !peer.#closed) peer.#enqueue({ kind: 'data', bytes });
    if (this.#aboveLowWater && this.#bufferedBytes <= this.network.config.lowWaterMarkBytes) {
      this.#aboveLowWater = false;
      this.emit('drain');
    }
  }

  /** @internal a partition swallowed the remote's close notice and has healed. */
  remoteClosedNotice(): void {
    if (!this.#closed) this.#enqueue({ kind: 'close' });
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
    this.#inbound.length = 0;
    this.#inboundHead = 0;
    this.network.linkClosed(this);
    this.emit('close', reason);
  }

  /** Schedules an arrival at this end, one latency from now and never before earlier arrivals. */
  #enqueue(item: Inbound): void {
    const clock = this.network.clock;
    const nowMs = clock.now();
    const arrivalMs = Math.max(
      nowMs + this.network.latencyMs(this.localId, this.remoteId),
      this.#lastArrivalMs,
    );
    this.#lastArrivalMs = arrivalMs;
    this.#inbound.push(item);
    clock.setTimeout(() => this.#deliverNext(), arrivalMs - nowMs);
  }

  #deliverNext(): void {
    if (this.#closed || this.#inboundHead >= this.#inbound.length) return;
    const item = this.#inbound[this.#inboundHead]!;
    this.#inbound[this.#inboundHead++] = undefined as unknown as Inbound;
    if (this.#inboundHead === this.#inbound.length) {
      this.#inbound.length = 0;
      this.#inboundHead = 0;
    } else if (this.#inboundHead > 1024 && this.#inboundHead * 2 > this.#inbound.length) {
      this.#inbound.splice(0, this.#inboundHead);
      this.#inboundHead = 0;
    }
    if (this.network.isBlocked(this.localId, this.remoteId)) {
      if (item.kind === 'close') this.network.closeNoticeLost(this);
      return;
    }
    if (item.kind === 'close') return this.#close(REMOTE_CLOSED);
    this.#markConnected(); // the handshake's last step never lags the first data (real timers may reorder)
    this.emit('data', item.bytes);
  }
}
