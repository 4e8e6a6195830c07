/**
 * The engine's seams: everything platform-specific is injected, so one engine runs in browsers, in
 * Node peers and in the simulator (simulated clock and network). Nothing in `peer/core` reads the wall
 * clock, starts a timer or opens a socket by itself.
 */
import type {
  Ack,
  Attestation,
  AttestationBody,
  ChannelInfo,
  Check,
  IceServer,
  JoinRequest,
  JoinResult,
  LinkCloseReason,
  NatType,
  NeighboursUpdate,
  PeerComplaintCode,
  PeerReport,
  SignalData,
  TypedEmitter,
} from '../../protocol/index.ts';

export type TimerHandle = { readonly __timer: unique symbol } | number | object;

/** Time and timers. Real in Node and browsers; simulated in tests and the simulator. */
export interface Clock {
  /** Milliseconds, monotonic (only differences matter; the wall clock is `wallNow`). */
  now(): number;
  /** Milliseconds since the Unix epoch (to compare with attestations' publish times). */
  wallNow(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
}

export type PeerLinkEvents = {
  /** Signaling data to relay to the remote peer through the tracker. */
  signal: (data: SignalData) => void;
  connect: () => void;
  data: (bytes: Uint8Array) => void;
  /** `bufferedAmount` fell from above the low-water mark to at or below it. */
  drain: () => void;
  /**
   * The transport's own reason ({@link LinkCloseReason}: `remote-closed`, `destroyed`,
   * `webrtc-error: …`), or the one its owner gave `destroy(reason)`.
   */
  close: (reason: LinkCloseReason | string) => void;
};

/** ICE candidate types (RFC 8445 §5.1.1.1: host, server-reflexive, peer-reflexive, relayed). */
export type CandidateType = 'host' | 'srflx' | 'prflx' | 'relay';

/** The path a connected link took: the types of the selected candidate pair. */
export interface LinkRoute {
  local: CandidateType | 'unknown';
  remote: CandidateType | 'unknown';
  /** True when either side is a TURN relay candidate. */
  relayed: boolean;
  /** 'udp' or 'tcp' as reported by the local candidate, when known. */
  protocol?: string;
}

/**
 * A data channel to one remote peer: ordered, reliable, whole binary messages.
 *
 * The contract every `Transport` keeps (test/peer/transport-contract.ts checks it against each one):
 *
 * - Handshake: the initiator emits the first `signal`; the responder emits none before it was fed
 *   one. Signals are JSON-serialisable `SignalData` (the tracker relays and validates them). Each end
 *   emits `connect` at most once, with `connected` already true, and before any `data`.
 * - `send(bytes)`: misuse throws at once, whatever the state: a non-`Uint8Array` or a message over
 *   `MAX_MESSAGE_BYTES` throws `TypeError`. Before `connect` it throws `Error` ('not connected') and
 *   sends nothing; once closed it is silently ignored (a close may race any send). The bytes are copied
 *   (changing the buffer after `send` changes nothing; a view sends only its own bytes), and each
 *   message arrives whole, in order, as a `Uint8Array` the receiver owns.
 * - Backpressure: `bufferedAmount` counts the bytes sent and not yet handed to the network; `drain`
 *   fires once each time it falls from above the transport's low-water mark to at or below it (never
 *   within the `send` call). 0 before `connect` and once closed.
 * - Close: `close` fires exactly once per end and nothing is emitted after it. `destroy(reason)` emits
 *   `close(reason)` synchronously (default {@link DESTROYED}) and is idempotent. The remote end of a
 *   connected link then closes with {@link REMOTE_CLOSED}, after receiving an in-order prefix of what was
 *   sent (bytes still queued locally may be lost). Both ends destroyed at once each keep their own
 *   reason. Failures close with an implementation-specific stable reason ('webrtc-error: …',
 *   'memory-signal-invalid: …').
 * - Destroy before `connect`: the local end closes once, never connects and signals no more. The remote
 *   end is not necessarily told: it never connects and stays so until its owner destroys it (the
 *   engine's connect timeout), or it closes (any reason; a responder that won the race and connected
 *   closes with {@link REMOTE_CLOSED}). A link destroyed before its first signal is never heard of.
 * - `route()` (optional) resolves undefined before `connect` and once closed.
 */
export interface PeerLink extends TypedEmitter<PeerLinkEvents> {
  readonly remoteId: string;
  readonly connected: boolean;
  /** Bytes queued and not yet sent (backpressure). */
  readonly bufferedAmount: number;
  /** Feeds signaling data received from the remote peer. */
  signal(data: SignalData): void;
  send(bytes: Uint8Array): void;
  /** Idempotent; emits `close` once. */
  destroy(reason?: string): void;
  /** The selected candidate pair once connected (WebRTC links); undefined when unknown. */
  route?(): Promise<LinkRoute | undefined>;
}

/**
 * Learns this peer's NAT type from two addresses of an RFC 5780 STUN server (the tracker's
 * `natProbe`), where the peer cannot run RFC 5780 itself: browsers (peer/platform/ice-nat-probe.ts).
 * Resolves `unknown` when it cannot tell; never rejects for network trouble.
 */
export interface NatProber {
  probe(stunUrls: readonly string[]): Promise<NatType>;
}

/** Creates links; each keeps the {@link PeerLink} contract. */
export interface Transport {
  createLink(opts: {
    localId: string;
    remoteId: string;
    initiator: boolean;
    iceServers: IceServer[];
  }): PeerLink;
}

export interface HttpResponse {
  status: number;
  bytes: Uint8Array;
}

export interface HttpFetcher {
  /**
   * GET `url`. Rejects on network errors and when `signal` aborts; HTTP error statuses are returned.
   * `onProgress` is called with the size of each chunk as it arrives.
   */
  get(
    url: string,
    opts?: { signal?: AbortSignal; onProgress?: (chunkBytes: number) => void },
  ): Promise<HttpResponse>;
}

/** Checks the signed records of one channel key (see {@link Integrity.importKey}). */
export interface RecordVerifier {
  /** Whether `att` is signed by the channel key: ok, or `attestation-signature-invalid`/`-malformed`. */
  verify(att: Attestation): Promise<Check>;
}

/**
 * How records and bytes are checked: Ed25519 signatures and SHA-256 through WebCrypto in the product
 * ({@link webCryptoIntegrity}, integrity.ts); a cheap deterministic stand-in in the simulator, whose
 * promises resolve at once (WebCrypto resolves off the event loop, which breaks determinism). Either
 * way every record and every byte goes through it before it is stored, played or uploaded.
 */
export interface Integrity {
  /** The verifier of a channel's public key (base64url, as channel.json serves it); rejects a bad key. */
  importKey(publicKey: string): Promise<RecordVerifier>;
  /**
   * Whether `bytes` are the segment `att` describes: ok, `segment-length-mismatch` or
   * `segment-hash-mismatch` (as protocol's `checkSegmentBytes`).
   */
  checkBytes(att: AttestationBody, bytes: Uint8Array): Promise<Check>;
}

export type TrackerConnectionEvents = {
  neighbours: (update: NeighboursUpdate) => void;
  signal: (msg: { from: string; data: SignalData }) => void;
  attestation: (att: Attestation) => void;
  channel: (info: ChannelInfo) => void;
  /** The connection to the tracker dropped (the engine keeps playing from the origin and P2P links). */
  disconnected: (reason: string) => void;
  /** Reconnected: the engine joins again. */
  reconnected: () => void;
};

/** The engine's session with the tracker (socket.io in Node and browsers; a fake in the simulator). */
export interface TrackerConnection extends TypedEmitter<TrackerConnectionEvents> {
  join(req: JoinRequest): Promise<Ack<JoinResult>>;
  report(report: PeerReport): void;
  signal(to: string, data: SignalData): Promise<Ack<object>>;
  /** Tells the tracker that a neighbour misbehaved (fire and forget). */
  reportPeer(peer: string, code: PeerComplaintCode): void;
  leave(): void;
  /** Closes the connection for good. Idempotent. */
  destroy(): void;
}

/** Close reason a link gets when the remote end destroyed it (every Transport uses it). */
export const REMOTE_CLOSED = 'remote-closed' satisfies LinkCloseReason;

/** Close reason of `destroy()` called without one (every Transport uses it). */
export const DESTROYED = 'destroyed' satisfies LinkCloseReason;
