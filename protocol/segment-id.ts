/**
 * Segment identity shared by every room: `channel / rendition / mediaSequence`,
 * plus the discontinuity sequence the segment belongs to.
 */

/** Channel ids: lowercase letters, digits, `-` and `_`, 1–64 characters, starting with a letter or digit. */
export const CHANNEL_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** Rendition names (e.g. `720p`): same alphabet, 1–32 characters. */
export const RENDITION_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,31}$/;

export interface SegmentId {
  readonly channel: string;
  readonly rendition: string;
  readonly mediaSequence: number;
  readonly discontinuitySequence: number;
}

export function isChannelId(value: unknown): value is string {
  return typeof value === 'string' && CHANNEL_ID_PATTERN.test(value);
}

export function isRenditionName(value: unknown): value is string {
  return typeof value === 'string' && RENDITION_NAME_PATTERN.test(value);
}

export function isSequenceNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Throws a TypeError naming the first invalid field (misuse). */
export function assertSegmentId(id: SegmentId): void {
  if (!isChannelId(id.channel)) throw new TypeError(`invalid channel id: ${JSON.stringify(id.channel)}`);
  if (!isRenditionName(id.rendition))
    throw new TypeError(`invalid rendition: ${JSON.stringify(id.rendition)}`);
  if (!isSequenceNumber(id.mediaSequence))
    throw new TypeError(`invalid media sequence: ${JSON.stringify(id.mediaSequence)}`);
  if (!isSequenceNumber(id.discontinuitySequence))
    throw new TypeError(`invalid discontinuity sequence: ${JSON.stringify(id.discontinuitySequence)}`);
}

/** `channel/rendition/mediaSequence`, the key used in maps and logs. */
export function segmentKey(id: Pick<SegmentId, 'channel' | 'rendition' | 'mediaSequence'>): string {
  return `${id.channel}/${id.rendition}/${id.mediaSequence}`;
}
