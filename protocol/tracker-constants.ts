/**
 * The constants and limits of the tracker's protocol that both its schemas (`tracker-schemas.ts`) and
 * its types (`tracker.ts`) build on: protocol version, id pattern, signaling bounds, NAT types, peer
 * kinds and modes, channel statuses, complaint codes. Their own module, so neither of those imports
 * the other back.
 */
import type { PeerErrorCode } from './errors.ts';

export const TRACKER_PROTOCOL_VERSION = 1;

/** Peer ids are assigned by the tracker: 16 base64url characters. */
export const PEER_ID_PATTERN = /^[A-Za-z0-9_-]{16}$/;

/** Session description types a peer may relay (`{ type, sdp? }`). */
export const SDP_TYPES = ['offer', 'answer', 'pranswer', 'rollback'] as const;
/** Bounds of signaling data, the same for the tracker's schema and the clients' validator. */
export const SIGNAL_LIMITS = {
  sdpChars: 32 * 1024,
  candidateChars: 1024,
  sdpMidChars: 64,
  maxSdpMLineIndex: 64,
  usernameFragmentChars: 256,
} as const;

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

/**
 * Why a peer tells the tracker about a neighbour that misbehaved. The tracker stops introducing a peer
 * that several of its own neighbours complained about (see the README, "Security and faults").
 */
export const PEER_COMPLAINT_CODES = [
  'peer-sent-bad-segment',
  'peer-protocol-violation',
  'peer-over-budget',
  'peer-unresponsive',
] as const satisfies readonly PeerErrorCode[];
export type PeerComplaintCode = (typeof PEER_COMPLAINT_CODES)[number];
