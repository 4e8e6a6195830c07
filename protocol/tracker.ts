/**
 * The tracker's socket.io protocol: event maps for both directions and the schemas every payload is
 * validated with (by the tracker at its edge, and by clients on what the tracker sends).
 */
import { z } from 'zod';
import { CHANNEL_ID_PATTERN, RENDITION_NAME_PATTERN } from './segment-id.ts';
import type { Attestation } from './attestation.ts';

export const TRACKER_PROTOCOL_VERSION = 1;

export const channelIdSchema = z.string().regex(CHANNEL_ID_PATTERN, 'invalid channel id');
export const renditionSchema = z.string().regex(RENDITION_NAME_PATTERN, 'invalid rendition name');
/** Peer ids are assigned by the tracker: 16 base64url characters. */
export const peerIdSchema = z.string().regex(/^[A-Za-z0-9_-]{16}$/, 'invalid peer id');
const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const kbps = z.number().finite().nonnegative().max(100_000_000);

export const NAT_TYPES = [
  'open',
  'full-cone',
  'restricted-cone',
  'port-restricted-cone',
  'symmetric',
  'udp-blocked',
  'unknown',
] as const;
export type NatType = (typeof NAT_TYPES)[number];

export const PEER_KINDS = ['browser', 'node'] as const;
export type PeerKind = (typeof PEER_KINDS)[number];
export const PEER_MODES = ['viewer', 'relay'] as const;
export type PeerMode = (typeof PEER_MODES)[number];

export const CHANNEL_STATUSES = ['idle', 'live', 'ended'] as const;
export type ChannelStatus = (typeof CHANNEL_STATUSES)[number];

// ---- source → tracker ----

export const renditionInfoSchema = z.strictObject({
  name: renditionSchema,
  width: z.number().int().min(16).max(8192),
  height: z.number().int().min(16).max(8192),
  bandwidthBps: z.number().int().positive().max(1_000_000_000),
});
export type RenditionInfo = z.infer<typeof renditionInfoSchema>;

export const channelRegistrationSchema = z.strictObject({
  protocolVersion: z.literal(TRACKER_PROTOCOL_VERSION),
  channel: channelIdSchema,
  title: z.string().min(1).max(200),
  originUrl: z.url({ protocol: /^https?$/ }).max(2048),
  /**
   * The channel's Ed25519 key (raw 32 bytes, base64url): it signs every segment and this registration.
   * The tracker pins the channel id to the first key it accepted and refuses any other key.
   */
  publicKey: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'public key must be 32 raw bytes, base64url'),
  status: z.enum(CHANNEL_STATUSES),
  segmentDurationS: z.number().positive().max(60),
  renditions: z.array(renditionInfoSchema).min(1).max(16),
  /** Playlist URLs, relative to `originUrl` (live, and the newest recording when there is one). */
  livePlaylist: z.string().max(512).nullable(),
  recordings: z
    .array(
      z.strictObject({ id: z.string().max(64), title: z.string().max(200), master: z.string().max(512) }),
    )
    .max(1000),
  /**
   * When the source signed this registration (ms since the epoch). The tracker accepts it only close
   * to its own clock and only if it is newer than the last one it accepted for the channel, so a
   * registration is single-use: a replay is refused.
   */
  signedAtMs: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  /** Ed25519 signature (base64url) of {@link registrationPayload} with the channel's key. */
  signature: z.string().regex(/^[A-Za-z0-9_-]{86}$/, 'signature must be 64 raw bytes, base64url'),
});
export type ChannelRegistration = z.infer<typeof channelRegistrationSchema>;
/** A registration before it is signed. */
export type UnsignedRegistration = Omit<ChannelRegistration, 'signature'>;

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

export const originCountersSchema = z.strictObject({
  segmentBytes: count,
  playlistBytes: count,
  attestationBytes: count,
  segmentRequests: count,
});
export type OriginCounters = z.infer<typeof originCountersSchema>;

// ---- peer → tracker ----

export const joinRequestSchema = z.strictObject({
  protocolVersion: z.literal(TRACKER_PROTOCOL_VERSION),
  channel: channelIdSchema,
  kind: z.enum(PEER_KINDS),
  mode: z.enum(PEER_MODES).default('viewer'),
  /** Omitted: the tracker assigns the channel's lowest rendition (players on 'auto' start there). */
  rendition: renditionSchema.optional(),
  /** Measured (or declared) upload capacity. */
  uploadKbps: kbps,
  natType: z.enum(NAT_TYPES).default('unknown'),
});
export type JoinRequest = z.input<typeof joinRequestSchema>;

export const peerReportSchema = z.strictObject({
  rendition: renditionSchema,
  /** Seconds of media buffered ahead of the playhead. */
  bufferS: z.number().finite().min(0).max(3600),
  /** Newest and oldest media sequence held of the current rendition (null when none). */
  held: z.strictObject({ first: count, last: count }).nullable(),
  uploadKbps: kbps,
  downloadKbps: kbps,
  /** Cumulative since join. */
  httpBytes: count,
  p2pBytes: count,
  uploadedBytes: count,
  /** Peers currently connected. */
  neighbours: z.array(peerIdSchema).max(64),
  /** Cumulative bytes received from each neighbour (who feeds whom). */
  receivedFrom: z
    .record(peerIdSchema, count)
    .refine((r) => Object.keys(r).length <= 64, 'at most 64 entries'),
  /** Round-trip times to neighbours (ms). */
  rttMs: z
    .record(peerIdSchema, z.number().finite().nonnegative().max(60_000))
    .refine((r) => Object.keys(r).length <= 64, 'at most 64 entries')
    .optional(),
  stalls: count.optional(),
});
export type PeerReport = z.infer<typeof peerReportSchema>;

const sdp = z
  .string()
  .min(1)
  .max(32 * 1024);
export const signalDataSchema = z.union([
  z.strictObject({ type: z.enum(['offer', 'answer', 'pranswer', 'rollback']), sdp: sdp.optional() }),
  z.strictObject({
    type: z.literal('candidate'),
    candidate: z.strictObject({
      candidate: z.string().max(1024),
      sdpMid: z.string().max(64).nullable().optional(),
      sdpMLineIndex: z.number().int().min(0).max(64).nullable().optional(),
      usernameFragment: z.string().max(256).nullable().optional(),
    }),
  }),
  z.strictObject({ renegotiate: z.literal(true) }),
]);
export type SignalData = z.infer<typeof signalDataSchema>;

export const signalRequestSchema = z.strictObject({ to: peerIdSchema, data: signalDataSchema });
export type SignalRequest = z.infer<typeof signalRequestSchema>;

/**
 * Why a peer tells the tracker about a neighbour that misbehaved. The tracker stops introducing a peer
 * that several of its own neighbours complained about (see the README, "Security and faults").
 */
export const PEER_COMPLAINT_CODES = [
  'peer-sent-bad-segment',
  'peer-protocol-violation',
  'peer-over-budget',
  'peer-unresponsive',
] as const;
export type PeerComplaintCode = (typeof PEER_COMPLAINT_CODES)[number];
export const peerComplaintSchema = z.strictObject({ peer: peerIdSchema, code: z.enum(PEER_COMPLAINT_CODES) });
export type PeerComplaint = z.infer<typeof peerComplaintSchema>;

export const watchRequestSchema = z.strictObject({ channel: channelIdSchema.optional() });

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

export const TRACKER_ERROR_CODES = [
  'invalid-input',
  'version-mismatch',
  'unknown-channel',
  'channel-offline',
  'unauthorized',
  /** A signed registration whose time is too far from the tracker's clock. */
  'registration-expired',
  /** A signed registration not newer than the last one accepted for the channel (a replay). */
  'registration-replayed',
  'not-joined',
  'already-joined',
  'unknown-peer',
  'other-channel',
  'not-introduced',
  'rate-limited',
  'tracker-full',
  'internal',
] as const;
export type TrackerErrorCode = (typeof TRACKER_ERROR_CODES)[number];

export type Ack<T> = ({ ok: true } & T) | { ok: false; error: { code: TrackerErrorCode; message: string } };

export interface JoinResult {
  peerId: string;
  /** The rendition this session is in (as asked, or assigned). */
  rendition: string;
  iceServers: IceServer[];
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

/** Formats the first zod issue as one line: `field: message`. */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid input';
  const where = issue.path.length ? issue.path.join('.') : 'input';
  return `${where}: ${issue.message}`;
}

export { z };
