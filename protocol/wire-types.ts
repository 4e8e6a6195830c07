/**
 * The peer wire protocol: binary messages on a WebRTC data channel. Types here; the codec is in
 * `wire.ts`. Every message is at most {@link MAX_MESSAGE_BYTES}; the first one on a link is `hello`,
 * which carries the protocol version. A decoder error closes that peer with a stable error code.
 */
import { PeerTvError, type ByeCode, type PeerErrorCode } from './errors.ts';

/** Stable codes a link is closed with (defined with every other code in errors.ts). */
export { PEER_ERROR_CODES, type PeerErrorCode } from './errors.ts';

/** 2: `receiving` (relaying segments while they arrive). */
export const WIRE_VERSION = 2;
/** No message may be larger: fits every browser's data channel. */
export const MAX_MESSAGE_BYTES = 64 * 1024;
/** Largest payload of one `data` message (header included, the message stays ≤ 64 KiB). */
export const MAX_CHUNK_BYTES = MAX_MESSAGE_BYTES - 32;
/** Largest segment a peer will accept over P2P. */
export const MAX_SEGMENT_BYTES = 64 * 1024 * 1024;
/** Sequence ranges at most in one `have`. */
export const MAX_HAVE_RANGES = 1024;

export type WireMessage =
  /** First message on a link, both directions. */
  | { type: 'hello'; version: number; peerId: string; channel: string }
  /**
   * Segments held, as ranges of media sequence numbers `[from, to]` (inclusive) of one rendition.
   * `reset`: this is the full set (replaces what was announced before); otherwise the ranges are added.
   */
  | { type: 'have'; rendition: string; reset: boolean; ranges: [number, number][] }
  /**
   * A segment now on its way in (from a neighbour or the origin), not verified yet: it may be requested
   * already, and is relayed as its bytes arrive (the last bytes only once it is verified); a `have`
   * follows when it is stored.
   */
  | { type: 'receiving'; rendition: string; mediaSequence: number }
  /** Drops announced sequences (evicted). */
  | { type: 'lost'; rendition: string; ranges: [number, number][] }
  /** Asks for a whole segment. `deadlineMs`: time left until the requester needs it (urgency). */
  | { type: 'request'; requestId: number; rendition: string; mediaSequence: number; deadlineMs: number }
  /** A chunk of the answer to `requestId`: `offset` into a segment of `totalBytes`. */
  | { type: 'data'; requestId: number; offset: number; totalBytes: number; bytes: Uint8Array }
  | { type: 'cancel'; requestId: number }
  /** The request cannot be served. */
  | { type: 'absent'; requestId: number; reason: AbsentReason }
  /** Closing the link on purpose, with a code from {@link PEER_ERROR_CODES} or 'bye'. */
  | { type: 'bye'; code: ByeCode };

export const ABSENT_REASONS = ['not-held', 'busy', 'evicted'] as const;
export type AbsentReason = (typeof ABSENT_REASONS)[number];

export class WireError extends PeerTvError<PeerErrorCode> {
  override name = 'WireError';
}
