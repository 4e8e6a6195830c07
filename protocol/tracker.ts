/**
 * The tracker's socket.io protocol: event maps for both directions, the constants and limits every
 * payload is held to, and the types of what the tracker sends. The zod schemas the tracker validates its
 * input with live in `tracker-schemas.ts` (the wire types of client → tracker messages are inferred
 * there); clients check what the tracker sends with `tracker-validate.ts`. No zod here: browsers load
 * this module.
 */
import type { Attestation } from './attestation.ts';
import type { TrackerErrorCode } from './errors.ts';
import type { ChannelStatus, NatType, PeerKind, PeerMode } from './tracker-constants.ts';
import type {
  ChannelRegistration,
  JoinRequest,
  OriginCounters,
  PeerComplaint,
  PeerReport,
  RenditionInfo,
  SignalData,
  SignalRequest,
  UnsignedRegistration,
} from './tracker-schemas.ts';

export type {
  ChannelRegistration,
  JoinRequest,
  OriginCounters,
  PeerComplaint,
  PeerReport,
  RenditionInfo,
  SignalData,
  SignalRequest,
  UnsignedRegistration,
};

export * from './tracker-constants.ts';

// ---- source → tracker ----

/** JSON with object keys sorted at every level: one byte string per value, whoever serializes it. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The bytes a channel registration's signature covers: every field but the signature, canonically. */
export function registrationPayload(reg: UnsignedRegistration | ChannelRegistration): Uint8Array {
  const { signature: _s, ...body } = reg as ChannelRegistration;
  return new TextEncoder().encode(`peertv-registration/1\n${canonicalJson(body)}`);
}

// ---- peer → tracker ----

// ---- tracker → clients ----

export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

/** A channel as the directory shows it. */
export interface ChannelInfo {
  id: string;
  title: string;
  status: ChannelStatus;
  originUrl: string;
  publicKey: string;
  segmentDurationS: number;
  renditions: RenditionInfo[];
  livePlaylist: string | null;
  recordings: { id: string; title: string; master: string }[];
  viewers: number;
  /**
   * The channel's offload over the last `offloadWindowS` seconds: 1 − origin segment bytes ÷ segment
   * bytes the channel's peers received (0..1; see {@link ChannelStatsSample.offload}); null while
   * nothing was received in the window.
   */
  offload: number | null;
  /** The window `offload` is computed over (s); absent from older trackers (then `OFFLOAD_WINDOW_MS`). */
  offloadWindowS?: number;
}

export type Ack<T> = ({ ok: true } & T) | { ok: false; error: { code: TrackerErrorCode; message: string } };

export interface JoinResult {
  peerId: string;
  /** The rendition this session is in (as asked, or assigned). */
  rendition: string;
  iceServers: IceServer[];
  /**
   * Two addresses of one RFC 5780 STUN server (its primary and its OTHER-ADDRESS) as `stun:` URLs, when
   * the tracker knows them: a peer that cannot run RFC 5780 itself (a browser) gathers server-reflexive
   * candidates against both to learn its NAT's mapping, and reports the type (`PeerReport.natType`).
   */
  natProbe?: string[];
  channel: ChannelInfo;
  neighbours: string[];
  firstTier: boolean;
  reportIntervalMs: number;
}

export interface DirectoryUpdate {
  /** New or changed entries. */
  upsert: ChannelInfo[];
  /** Channels gone from the directory. */
  remove: string[];
}

export interface NeighboursUpdate {
  /** Peers to connect to (the tracker introduced them; signaling between the pair is allowed). */
  add: string[];
  /** Peers the tracker no longer recommends (the client may keep them while useful). */
  remove: string[];
  firstTier: boolean;
  /**
   * Ranked suppliers from the tracker's planner (Chandelier): ask them first, in this order, then
   * other neighbours, then the origin. Absent: no plan (the random policy), the ranking is unchanged.
   */
  parents?: string[];
}

export interface OverlaySnapshot {
  channel: string;
  at: number;
  /** Peers in the channel (the snapshot may show fewer). */
  totalPeers: number;
  peers: {
    id: string;
    kind: PeerKind;
    mode: PeerMode;
    rendition: string;
    natType: NatType;
    /** Upload capacity (measured by the peer, else declared). */
    uploadKbps: number;
    downloadKbps: number;
    /** Bytes this peer uploaded to others since it joined (its last report). */
    uploadedBytes: number;
    bufferS: number;
    firstTier: boolean;
  }[];
  /** Recommended links (undirected). */
  links: [string, string][];
  /** Bytes that flowed `from` → `to` during the receiving peer's last report interval. */
  flows: { from: string; to: string; bytes: number }[];
}

export interface ChannelStatsSample {
  at: number;
  viewers: number;
  /** Segment bytes the channel's peers received from the origin and from each other (cumulative). */
  httpBytes: number;
  p2pBytes: number;
  /** Bytes the channel's peers uploaded to each other (cumulative). */
  uploadedBytes: number;
  /** Segment bytes the origin sent for this channel since it registered (null: the source sends none). */
  originSegmentBytes: number | null;
  /**
   * Offload over the trailing window: 1 − origin segment bytes ÷ segment bytes the peers received,
   * both counted over the window (from the peers' own HTTP/P2P split when the origin sends no
   * counters), clamped to 0..1; null while nothing was received in the window.
   */
  offload: number | null;
  /** Sum of the peers' measured download rates. */
  downloadKbps: number;
  /** Measured upload traffic: the peers' uploaded bytes over the last few report intervals, as a rate. */
  uploadKbps: number;
}

export interface ChannelStats {
  channel: string;
  /** The window `offload` is computed over (s). */
  offloadWindowS: number;
  current: ChannelStatsSample;
  history: ChannelStatsSample[];
  overlay: OverlaySnapshot;
}

type Cb<T> = (ack: Ack<T>) => void;

export interface ClientToServerEvents {
  join: (req: JoinRequest, ack: Cb<JoinResult>) => void;
  report: (report: PeerReport, ack?: Cb<object>) => void;
  signal: (req: SignalRequest, ack?: Cb<object>) => void;
  leave: (ack?: Cb<object>) => void;
  /** A neighbour misbehaved (the engine closed its link with this code). */
  'report-peer': (complaint: PeerComplaint, ack?: Cb<object>) => void;
  'source:register': (reg: ChannelRegistration, ack: Cb<object>) => void;
  'source:attestation': (att: Attestation, ack?: Cb<object>) => void;
  'source:counters': (counters: OriginCounters, ack?: Cb<object>) => void;
  watch: (req: { channel?: string }, ack?: Cb<{ channels: ChannelInfo[] }>) => void;
}

export interface ServerToClientEvents {
  neighbours: (update: NeighboursUpdate) => void;
  signal: (msg: { from: string; data: SignalData }) => void;
  attestation: (att: Attestation) => void;
  channel: (info: ChannelInfo) => void;
  /** Directory entries that changed since the last push (watchers got the whole list with `watch`). */
  'directory-update': (update: DirectoryUpdate) => void;
  stats: (stats: ChannelStats[]) => void;
}
