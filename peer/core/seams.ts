/**
 * The engine's seams: everything platform-specific is injected, so one engine runs in browsers, in
 * Node peers and in the simulator (simulated clock and network). Nothing in `peer/core` reads the wall
 * clock, starts a timer or opens a socket by itself.
 */
import type {
  Ack,
  Attestation,
  ChannelInfo,
  IceServer,
  JoinRequest,
  JoinResult,
  LinkCloseReason,
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
  /** `bufferedAmount` fell below the low-water mark. */
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

/** A data channel to one remote peer. */
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
  close(): void;
}

/** Close reason a link gets when the remote end destroyed it (every Transport uses it). */
export const REMOTE_CLOSED = 'remote-closed' satisfies LinkCloseReason;
