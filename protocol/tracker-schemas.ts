/**
 * The zod schemas the tracker validates every input with at its edge (socket.io events and REST bodies),
 * and the wire types inferred from them. Node only in practice: browsers never import these (the
 * player's bundle would carry zod), they check what the tracker sends them with the small validators of
 * `tracker-validate.ts`. This module is side-effect free, so bundlers drop it when nothing uses it.
 */
import { z } from 'zod';
import { CHANNEL_ID_PATTERN, RENDITION_NAME_PATTERN } from './segment-id.ts';
import {
  CHANNEL_STATUSES,
  NAT_TYPES,
  PEER_COMPLAINT_CODES,
  PEER_ID_PATTERN,
  PEER_KINDS,
  PEER_MODES,
  SDP_TYPES,
  SIGNAL_LIMITS,
  TRACKER_PROTOCOL_VERSION,
} from './tracker-constants.ts';

export const channelIdSchema = z.string().regex(CHANNEL_ID_PATTERN, 'invalid channel id');
export const renditionSchema = z.string().regex(RENDITION_NAME_PATTERN, 'invalid rendition name');
/** Peer ids are assigned by the tracker: 16 base64url characters. */
export const peerIdSchema = z.string().regex(PEER_ID_PATTERN, 'invalid peer id');
const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const kbps = z.number().finite().nonnegative().max(100_000_000);

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
  /**
   * The NAT type learned after joining (a browser's ICE probe, see `JoinResult.natProbe`); the tracker
   * takes it while the type it holds is `unknown`.
   */
  natType: z.enum(NAT_TYPES).optional(),
});
export type PeerReport = z.infer<typeof peerReportSchema>;

const sdp = z.string().min(1).max(SIGNAL_LIMITS.sdpChars);
export const signalDataSchema = z.union([
  z.strictObject({ type: z.enum(SDP_TYPES), sdp: sdp.optional() }),
  z.strictObject({
    type: z.literal('candidate'),
    candidate: z.strictObject({
      candidate: z.string().max(SIGNAL_LIMITS.candidateChars),
      sdpMid: z.string().max(SIGNAL_LIMITS.sdpMidChars).nullable().optional(),
      sdpMLineIndex: z.number().int().min(0).max(SIGNAL_LIMITS.maxSdpMLineIndex).nullable().optional(),
      usernameFragment: z.string().max(SIGNAL_LIMITS.usernameFragmentChars).nullable().optional(),
    }),
  }),
  z.strictObject({ renegotiate: z.literal(true) }),
]);
export type SignalData = z.infer<typeof signalDataSchema>;

export const signalRequestSchema = z.strictObject({ to: peerIdSchema, data: signalDataSchema });
export type SignalRequest = z.infer<typeof signalRequestSchema>;

export const peerComplaintSchema = z.strictObject({ peer: peerIdSchema, code: z.enum(PEER_COMPLAINT_CODES) });
export type PeerComplaint = z.infer<typeof peerComplaintSchema>;

export const watchRequestSchema = z.strictObject({ channel: channelIdSchema.optional() });

/** Formats the first zod issue as one line: `field: message`. */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid input';
  const where = issue.path.length ? issue.path.join('.') : 'input';
  return `${where}: ${issue.message}`;
}

export { z };
