/**
 * The WebRTC `Transport`: one simple-peer connection per link, data channel only (ordered, reliable),
 * trickle ICE, ICE servers from the caller only (never simple-peer's default public STUN servers).
 * The RTCPeerConnection implementation is injected: `@roamhq/wrtc` in Node (see `peer/node/wrtc.ts`),
 * nothing in browsers. No Node-only API here: this file is bundled for browsers.
 *
 * Close reasons: the `destroy(reason)` argument locally; `remote-closed` when the remote closed the
 * channel; `webrtc-error: <code> <message>` when simple-peer failed (ICE failure, bad signal, …).
 */
import createDebug from 'debug';
import SimplePeer from 'simple-peer';
import { MAX_MESSAGE_BYTES, TypedEmitter } from '../../protocol/index.ts';
import type { IceServer, LinkCloseReason, SignalData } from '../../protocol/index.ts';
import { DESTROYED, REMOTE_CLOSED } from '../core/seams.ts';
import type {
  CandidateType,
  Clock,
  LinkRoute,
  PeerLink,
  PeerLinkEvents,
  TimerHandle,
  Transport,
} from '../core/seams.ts';
import { realClock } from './clock.ts';

const debug = createDebug('peertv:webrtc');
/** The close reason of a link that WebRTC failed. */
const webrtcError = (detail: string): LinkCloseReason => `webrtc-error: ${detail}`;

export interface SimplePeerTransportOptions {
  /** The WebRTC implementation (`@roamhq/wrtc` in Node); omitted in browsers. */
  wrtc?: unknown;
  /**
   * Keeps a local ICE candidate (the `candidate:…` string) when true. Rejected candidates are neither
   * trickled nor left in the offer/answer SDP. Default: keep all.
   */
  candidateFilter?: (candidate: string) => boolean;
  /** `drain` fires when `bufferedAmount` falls to this or below (bytes). */
  lowWaterMarkBytes: number;
  /**
   * Where the data channel lacks `bufferedamountlow` (wrtc does), `bufferedAmount` is polled at this
   * interval while above the low-water mark (ms).
   */
  drainPollMs: number;
  /** Timers for drain polling. */
  clock: Clock;
}

export const DEFAULT_SIMPLE_PEER_TRANSPORT: Omit<SimplePeerTransportOptions, 'wrtc' | 'candidateFilter'> = {
  lowWaterMarkBytes: 256 * 1024,
  drainPollMs: 5,
  clock: realClock,
};

/** The parts of simple-peer's data channel this file uses (RTCDataChannel, or wrtc's). */
interface ChannelLike {
  bufferedAmount: number;
  bufferedAmountLowThreshold?: number;
  addEventListener?: (type: string, listener: () => void) => void;
  removeEventListener?: (type: string, listener: () => void) => void;
}

/** One entry of RTCPeerConnection.getStats() (the fields this file reads). */
interface StatsEntry {
  id: string;
  type: string;
  selected?: boolean;
  nominated?: boolean;
  state?: string;
  selectedCandidatePairId?: string;
  localCandidateId?: string;
  remoteCandidateId?: string;
  candidateType?: string;
  protocol?: string;
}

/** simple-peer internals this file reads (not in its type definitions). */
interface PeerInternals {
  _pc: { getStats(): Promise<{ forEach(fn: (entry: StatsEntry) => void): void }> } | null;
  _channel: ChannelLike | null;
  _iceCompleteTimer: ReturnType<typeof globalThis.setTimeout> | null;
}

/** A candidate filter that keeps only IPv4 loopback candidates (tests and benchmarks on one machine). */
export function loopbackCandidatesOnly(candidate: string): boolean {
  // candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> …
  const address = candidate.replace(/^a=/, '').split(/\s+/)[4] ?? '';
  return address.startsWith('127.');
}

const CANDIDATE_TYPES: readonly string[] = ['host', 'srflx', 'prflx', 'relay'];

/**
 * The selected candidate pair from a getStats() report: the transport's `selectedCandidatePairId`
 * (standard), else a pair flagged `selected` (older engines), else a succeeded nominated pair.
 */
export function routeFromStats(entries: readonly StatsEntry[]): LinkRoute | undefined {
  const byId = new Map(entries.map((e) => [e.id, e]));
  const pairs = entries.filter((e) => e.type === 'candidate-pair');
  const viaTransport = entries.find((e) => e.type === 'transport' && e.selectedCandidatePairId);
  const pair =
    (viaTransport && byId.get(viaTransport.selectedCandidatePairId!)) ??
    pairs.find((p) => p.selected) ??
    pairs.find((p) => p.nominated && p.state === 'succeeded');
  if (!pair) return undefined;
  const kind = (id: string | undefined): CandidateType | 'unknown' => {
    const t = id ? byId.get(id)?.candidateType : undefined;
    return t && CANDIDATE_TYPES.includes(t) ? (t as CandidateType) : 'unknown';
  };
  const local = kind(pair.localCandidateId);
  const remote = kind(pair.remoteCandidateId);
  const protocol = pair.localCandidateId ? byId.get(pair.localCandidateId)?.protocol : undefined;
  return {
    local,
    remote,
    relayed: local === 'relay' || remote === 'relay',
    ...(typeof protocol === 'string' && { protocol }),
  };
}

/** Removes the `a=candidate:` lines the filter rejects from an SDP. */
export function filterSdpCandidates(sdp: string, keep: (candidate: string) => boolean): string {
  return sdp
    .split('\r\n')
    .filter((line) => !line.startsWith('a=candidate:') || keep(line.slice(2)))
    .join('\r\n');
}

export class SimplePeerTransport implements Transport {
  readonly #opts: SimplePeerTransportOptions;

  constructor(opts: Partial<SimplePeerTransportOptions> = {}) {
    const o = { ...DEFAULT_SIMPLE_PEER_TRANSPORT, ...opts };
    if (!(o.lowWaterMarkBytes >= 0)) throw new RangeError('lowWaterMarkBytes must be ≥ 0');
    if (!(o.drainPollMs > 0)) throw new RangeError('drainPollMs must be > 0');
    if (o.wrtc !== undefined && (typeof o.wrtc !== 'object' || o.wrtc === null))
      throw new TypeError('wrtc must be a WebRTC implementation object (e.g. @roamhq/wrtc)');
    this.#opts = o;
  }

  createLink(opts: {
    localId: string;
    remoteId: string;
    initiator: boolean;
    iceServers: IceServer[];
  }): PeerLink {
    return new SimplePeerLink(opts, this.#opts);
  }
}

class SimplePeerLink extends TypedEmitter<PeerLinkEvents> implements PeerLink {
  readonly remoteId: string;
  readonly #peer: SimplePeer.Instance;
  readonly #opts: SimplePeerTransportOptions;
  #connected = false;
  #closed = false;
  #errorReason: LinkCloseReason | undefined;
  #channel: ChannelLike | undefined;
  #pollTimer: TimerHandle | undefined;
  readonly #onLow = (): void => {
    if (!this.#closed) this.emit('drain');
  };

  constructor(
    link: { localId: string; remoteId: string; initiator: boolean; iceServers: IceServer[] },
    opts: SimplePeerTransportOptions,
  ) {
    super();
    this.remoteId = link.remoteId;
    this.#opts = opts;
    const peerOpts: SimplePeer.Options = {
      initiator: link.initiator,
      trickle: true,
      // Explicit, so that simple-peer's default public STUN servers are never used.
      config: { iceServers: link.iceServers.map((s) => ({ ...s })) },
      channelConfig: { ordered: true },
    };
    if (opts.wrtc !== undefined) peerOpts.wrtc = opts.wrtc as SimplePeer.Options['wrtc'];
    this.#peer = new SimplePeer(peerOpts);
    const peer = this.#peer;
    debug('%s → %s: new link (initiator %s)', link.localId, link.remoteId, link.initiator);
    peer.on('signal', (data: unknown) => this.#onLocalSignal(data));
    peer.on('connect', () => this.#onConnect());
    peer.on('data', (data: Uint8Array | string) => {
      if (this.#closed) return;
      // simple-peer emits 'connect' only after an asynchronous getStats(), and the channel may deliver
      // the remote's first messages before that: the channel is open, so connect first (the contract:
      // `connect` precedes `data`).
      if (!this.#connected) this.#onConnect();
      // simple-peer gives a Buffer (a Uint8Array) over the received ArrayBuffer: re-view, don't copy.
      const bytes =
        typeof data === 'string'
          ? new TextEncoder().encode(data)
          : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      this.emit('data', bytes);
    });
    // Always listening: an 'error' without listener would throw from simple-peer's EventEmitter.
    peer.on('error', (err: Error & { code?: string }) => {
      this.#errorReason ??= `webrtc-error: ${err.code ? `${err.code} ` : ''}${err.message}`;
      debug('%s: %s', this.remoteId, this.#errorReason);
    });
    peer.on('close', () => {
      // simple-peer never clears its 5 s ICE-complete timer, which would keep Node alive.
      const timer = (peer as unknown as PeerInternals)._iceCompleteTimer;
      if (timer) globalThis.clearTimeout(timer);
      this.#finish(this.#errorReason ?? REMOTE_CLOSED);
    });
  }

  get connected(): boolean {
    return this.#connected && !this.#closed;
  }

  get bufferedAmount(): number {
    if (this.#closed) return 0;
    return this.#channel?.bufferedAmount ?? 0;
  }

  signal(data: SignalData): void {
    if (this.#closed) return;
    try {
      this.#peer.signal(data as SimplePeer.SignalData);
    } catch (err) {
      this.destroy(webrtcError(`signal: ${(err as Error).message}`));
    }
  }

  send(bytes: Uint8Array): void {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('send: bytes must be a Uint8Array');
    if (bytes.byteLength > MAX_MESSAGE_BYTES)
      throw new TypeError(`send: message of ${bytes.byteLength} bytes > ${MAX_MESSAGE_BYTES}`);
    if (this.#closed) return;
    if (!this.#connected) throw new Error('send: link not connected yet');
    try {
      this.#peer.send(bytes);
    } catch (err) {
      // The channel is closing under us (its close event follows): report it now.
      this.destroy(webrtcError(`send: ${(err as Error).message}`));
      return;
    }
    this.#maybePoll();
  }

  async route(): Promise<LinkRoute | undefined> {
    const pc = (this.#peer as unknown as PeerInternals)._pc;
    if (this.#closed || !this.#connected || !pc) return undefined;
    const entries: StatsEntry[] = [];
    (await pc.getStats()).forEach((e) => entries.push(e));
    return routeFromStats(entries);
  }

  destroy(reason = DESTROYED): void {
    if (this.#closed) return;
    this.#finish(reason);
    this.#peer.destroy();
  }

  #finish(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#opts.clock.clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
    this.#channel?.removeEventListener?.('bufferedamountlow', this.#onLow);
    this.#channel = undefined;
    debug('%s: close (%s)', this.remoteId, reason);
    this.emit('close', reason);
  }

  #onLocalSignal(raw: unknown): void {
    if (this.#closed) return;
    const data = raw as {
      type?: string;
      sdp?: string;
      renegotiate?: boolean;
      candidate?: { candidate: string; sdpMid?: string | null; sdpMLineIndex?: number | null };
    };
    const keep = this.#opts.candidateFilter;
    let out: SignalData;
    if (data.type === 'candidate' && data.candidate) {
      if (keep && !keep(data.candidate.candidate)) return;
      const { candidate, sdpMid, sdpMLineIndex } = data.candidate;
      out = { type: 'candidate', candidate: { candidate, sdpMid, sdpMLineIndex } };
    } else if (
      data.type === 'offer' ||
      data.type === 'answer' ||
      data.type === 'pranswer' ||
      data.type === 'rollback'
    ) {
      // The local description already lists the candidates gathered so far: filter them too.
      const sdp = data.sdp !== undefined && keep ? filterSdpCandidates(data.sdp, keep) : data.sdp;
      out = sdp === undefined ? { type: data.type } : { type: data.type, sdp };
    } else if (data.renegotiate) {
      out = { renegotiate: true };
    } else {
      return; // transceiver requests: media only, not used here
    }
    this.emit('signal', out);
  }

  #onConnect(): void {
    if (this.#closed || this.#connected) return;
    this.#connected = true;
    const channel = (this.#peer as unknown as PeerInternals)._channel ?? undefined;
    this.#channel = channel;
    if (channel && typeof channel.bufferedAmountLowThreshold === 'number' && channel.addEventListener) {
      channel.bufferedAmountLowThreshold = this.#opts.lowWaterMarkBytes;
      channel.addEventListener('bufferedamountlow', this.#onLow);
    }
    this.emit('connect');
  }

  /** Polls `bufferedAmount` while above the low-water mark if the channel has no `bufferedamountlow`. */
  #maybePoll(): void {
    const channel = this.#channel;
    if (!channel || typeof channel.bufferedAmountLowThreshold === 'number') return;
    if (this.#pollTimer !== undefined || channel.bufferedAmount <= this.#opts.lowWaterMarkBytes) return;
    const tick = (): void => {
      this.#pollTimer = undefined;
      if (this.#closed) return;
      if (channel.bufferedAmount <= this.#opts.lowWaterMarkBytes) this.emit('drain');
      else this.#pollTimer = this.#opts.clock.setTimeout(tick, this.#opts.drainPollMs);
    };
    this.#pollTimer = this.#opts.clock.setTimeout(tick, this.#opts.drainPollMs);
  }
}
