/**
 * Every stable error code of PeerTV, as literal unions grouped by where the failure comes from. Each
 * union is backed by a `const` array, so code can enumerate it (validators, guards, the README check in
 * test/protocol/errors.test.ts), and the compiler refuses a misspelt code wherever one is emitted.
 * Misuse throws at once (TypeError, RangeError); runtime failures carry one of these codes, on an event
 * payload or in a {@link PeerTvError}. One condition, one name: a tracker that cannot be reached is
 * `tracker-unreachable` in the engine, the player and the source alike. The README's "Error codes"
 * table has one row per code.
 */

// ---- the tracker: refusals it sends to clients (error acknowledgements, `Refusal` in tracker/) ----

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

// ---- a client's link to the tracker (engine, player, the source's TrackerLink) ----

export const TRACKER_LINK_ERROR_CODES = [
  /** Cannot connect to the tracker, or the connection was lost, or a join failed (it keeps retrying). */
  'tracker-unreachable',
  /** The tracker refused the source's registration (its code is in the message). */
  'tracker-refused',
] as const;
export type TrackerLinkErrorCode = (typeof TRACKER_LINK_ERROR_CODES)[number];

// ---- the origin, over HTTP (the engine) ----

export const ORIGIN_ERROR_CODES = [
  /** An HTTP request failed or answered other than 200 (channel.json, playlist, segment, record). */
  'origin-unavailable',
  /** channel.json lists no live playlist. */
  'channel-offline',
  /** The master playlist has no variants, or not the rendition asked for. */
  'playlist-invalid',
] as const;
export type OriginErrorCode = (typeof ORIGIN_ERROR_CODES)[number];

// ---- a load given up on purpose (the engine's `load()` rejections) ----

export const LOAD_ABORT_CODES = ['dropped', 'destroyed'] as const;
export type LoadAbortCode = (typeof LOAD_ABORT_CODES)[number];

/** What `EngineError` carries and the engine's `error` event says. */
export const ENGINE_ERROR_CODES = [
  'tracker-unreachable',
  'unknown-channel',
  ...ORIGIN_ERROR_CODES,
  ...LOAD_ABORT_CODES,
] as const satisfies readonly (TrackerLinkErrorCode | TrackerErrorCode | OriginErrorCode | LoadAbortCode)[];
export type EngineErrorCode = (typeof ENGINE_ERROR_CODES)[number];

// ---- peers: why a neighbour link is closed for a fault (`bye`, `peer-closed`, complaints) ----

export const PEER_ERROR_CODES = [
  'peer-protocol-violation',
  'peer-version-mismatch',
  'peer-sent-bad-segment',
  'peer-timeout',
  'peer-wrong-channel',
  /** Asked for more than its budget (requests, upload rate, unrequested data, announcements). */
  'peer-over-budget',
  /** Its transfers to us kept stalling, timing out or not arriving (withholding, dripping). */
  'peer-unresponsive',
] as const;
export type PeerErrorCode = (typeof PEER_ERROR_CODES)[number];

/** What a `bye` message says: no fault (`bye`), or the fault the link is closed for. */
export type ByeCode = 'bye' | PeerErrorCode;

/**
 * Why a transport link closed, as the transports themselves say it (`PeerLink`'s `close`); a
 * `destroy(reason)` by its owner closes it with that reason instead. Codes with details are written
 * `<code>: <detail>` ({@link LinkCloseReason}).
 */
export const LINK_CLOSE_CODES = [
  /** The remote said `bye` (no fault). */
  'bye',
  /** Destroyed locally without a reason. */
  'destroyed',
  /** The remote end closed the link. */
  'remote-closed',
  /** WebRTC failed (ICE, a bad signal, the data channel): `webrtc-error: <code> <message>`. */
  'webrtc-error',
  /** The in-memory transport got a signal that does not fit the link (tests). */
  'memory-signal-invalid',
] as const;
export type LinkCloseCode = (typeof LINK_CLOSE_CODES)[number];
export type LinkCloseReason = LinkCloseCode | `${LinkCloseCode}: ${string}`;

// ---- integrity: bytes or records that fail their checks (`segment-rejected`, `protocol` checks) ----

export const ATTESTATION_ERROR_CODES = [
  'attestation-malformed',
  'attestation-signature-invalid',
  'attestation-mismatch',
  'attestation-chain-broken',
  'segment-length-mismatch',
  'segment-hash-mismatch',
] as const;
export type AttestationErrorCode = (typeof ATTESTATION_ERROR_CODES)[number];

export const INTEGRITY_ERROR_CODES = [
  ...ATTESTATION_ERROR_CODES,
  /** Bytes held unverified were let go: their record could not be had in time. */
  'attestation-unavailable',
] as const;
export type IntegrityErrorCode = (typeof INTEGRITY_ERROR_CODES)[number];

/** The `reason` of the engine's `segment-rejected` event. */
export const SEGMENT_REJECT_REASONS = [
  ...INTEGRITY_ERROR_CODES,
  /** A neighbour's answer did not fit the request (its link is closed for it). */
  'peer-protocol-violation',
] as const satisfies readonly (IntegrityErrorCode | PeerErrorCode)[];
export type SegmentRejectReason = (typeof SEGMENT_REJECT_REASONS)[number];

// ---- the source ----

/** `SourceChannel`'s `error` event. */
export const SOURCE_ERROR_CODES = ['encoder-crashed', 'publish-failed', 'publisher-refused'] as const;
export type SourceErrorCode = (typeof SOURCE_ERROR_CODES)[number];

/** Why the RTMP ingest turned a connection away (`RtmpIngestServer`'s `refused` event). */
export const RTMP_REFUSAL_CODES = [
  'handshake-failed',
  'protocol-violation',
  'limit-exceeded',
  'publish-deadline',
  'evicted',
  'idle-timeout',
  'wrong-app',
  'wrong-stream-key',
  'play-refused',
  'no-keyframe',
  'unsupported-codec',
  'channel-busy',
  'server-closing',
] as const;
export type RtmpRefusalCode = (typeof RTMP_REFUSAL_CODES)[number];

// ---- the STUN server ----

export const STUN_ERROR_CODES = ['stun-socket-error'] as const;
export type StunErrorCode = (typeof STUN_ERROR_CODES)[number];

// ---- the web player: its `notice` event ----

export const PLAYER_NOTICE_CODES = [
  'unknown-channel',
  'channel-offline',
  'broadcast-ended',
  'tracker-unreachable',
  'webrtc-unavailable',
  'p2p-unavailable',
  'media-error',
  /** Anything else that stopped playback (the message says what). */
  'error',
] as const;
export type PlayerNoticeCode = (typeof PLAYER_NOTICE_CODES)[number];

// ---- all of them ----

/** Every group, by name (the README's table lists the union of them, one row per code). */
export const ERROR_CODE_GROUPS = {
  tracker: TRACKER_ERROR_CODES,
  trackerLink: TRACKER_LINK_ERROR_CODES,
  origin: ORIGIN_ERROR_CODES,
  loadAbort: LOAD_ABORT_CODES,
  engine: ENGINE_ERROR_CODES,
  peer: PEER_ERROR_CODES,
  linkClose: LINK_CLOSE_CODES,
  integrity: INTEGRITY_ERROR_CODES,
  segmentRejected: SEGMENT_REJECT_REASONS,
  source: SOURCE_ERROR_CODES,
  rtmpRefusal: RTMP_REFUSAL_CODES,
  stun: STUN_ERROR_CODES,
  playerNotice: PLAYER_NOTICE_CODES,
} as const;
export type ErrorCode = (typeof ERROR_CODE_GROUPS)[keyof typeof ERROR_CODE_GROUPS][number];

/** Whether `value` is one of `codes` (checks a code that came from outside the type system). */
export const isErrorCode = <C extends string>(codes: readonly C[], value: unknown): value is C =>
  typeof value === 'string' && (codes as readonly string[]).includes(value);

/**
 * A runtime failure with its stable code (`C` narrows it to the codes of one source): the engine's
 * `EngineError`, the tracker's `Refusal`, the wire's `WireError`, the player's failures.
 */
export class PeerTvError<C extends ErrorCode = ErrorCode> extends Error {
  constructor(
    readonly code: C,
    message: string,
  ) {
    super(message);
  }
}
