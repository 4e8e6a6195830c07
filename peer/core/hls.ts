/**
 * HLS playlist parsing (RFC 8216), for the playlists our origin writes and for reasonable others:
 * strict about what matters (numbers, segment URIs, sequence numbering), tolerant of tags it does not
 * know. Isomorphic: pure string work plus `URL`.
 */

/** Refuses playlists larger than this many characters. */
export const MAX_PLAYLIST_CHARS = 1024 * 1024;
/** Refuses playlists listing more segments (or variants) than this. */
export const MAX_PLAYLIST_ENTRIES = 10_000;
/** Longest segment (or target) duration accepted, in seconds. */
const MAX_DURATION_S = 86_400;

/** A playlist that cannot be used. `message` is one line; `line` is 1-based when known. */
export class PlaylistError extends Error {
  override name = 'PlaylistError';
  constructor(
    message: string,
    readonly line?: number,
  ) {
    super(line === undefined ? message : `line ${line}: ${message}`);
  }
}

export interface MediaSegment {
  mediaSequence: number;
  /** Per the spec: the playlist's EXT-X-DISCONTINUITY-SEQUENCE plus the EXT-X-DISCONTINUITY tags before it. */
  discontinuitySequence: number;
  durationS: number;
  /** Absolute URL (resolved against the playlist's URL). */
  url: string;
  /** Marked EXT-X-GAP: the segment does not exist and must not be fetched. */
  gap: boolean;
  /** The segment's own EXT-X-PROGRAM-DATE-TIME (ms since the Unix epoch), null without one. */
  programDateTimeMs: number | null;
}

export interface MediaPlaylist {
  /** Media sequence of the first segment (EXT-X-MEDIA-SEQUENCE, default 0). */
  mediaSequence: number;
  /** Discontinuity sequence of the first segment's run (EXT-X-DISCONTINUITY-SEQUENCE, default 0). */
  discontinuitySequence: number;
  targetDurationS: number;
  /** EXT-X-ENDLIST: no segment will be added. */
  ended: boolean;
  /** EXT-X-PLAYLIST-TYPE:VOD. */
  vod: boolean;
  segments: MediaSegment[];
}

export interface Variant {
  /** The URI's file name without `.m3u8` (our rendition name, e.g. `480p`). */
  name: string;
  url: string;
  bandwidthBps: number;
  averageBandwidthBps?: number;
  width?: number;
  height?: number;
  codecs?: string;
  frameRate?: number;
}

export interface MasterPlaylist {
  variants: Variant[];
}

// ---------------------------------------------------------------- shared

interface Line {
  n: number;
  text: string;
}

function splitLines(text: string): Line[] {
  if (typeof text !== 'string') throw new PlaylistError('playlist is not text');
  if (text.length > MAX_PLAYLIST_CHARS)
    throw new PlaylistError(`playlist too large (${text.length} characters, at most ${MAX_PLAYLIST_CHARS})`);
  const raw = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);
  const lines: Line[] = [];
  raw.forEach((t, i) => {
    const trimmed = t.trim();
    if (trimmed !== '') lines.push({ n: i + 1, text: trimmed });
  });
  if (lines[0]?.text !== '#EXTM3U' || lines[0].n !== 1)
    throw new PlaylistError('not an HLS playlist (no #EXTM3U on the first line)');
  return lines;
}

/** Splits `#EXT-X-NAME:value` into name and value (value undefined without a colon). */
function tagOf(text: string): { name: string; value: string | undefined } {
  const colon = text.indexOf(':');
  return colon < 0
    ? { name: text.slice(1), value: undefined }
    : { name: text.slice(1, colon), value: text.slice(colon + 1) };
}

const show = (s: string): string => JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);

function decimalInteger(value: string | undefined, what: string, line: number): number {
  if (value === undefined || !/^\d{1,20}$/.test(value))
    throw new PlaylistError(`${what} is not a decimal integer: ${show(value ?? '')}`, line);
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new PlaylistError(`${what} is too large: ${value}`, line);
  return n;
}

function decimalFloat(value: string | undefined, what: string, line: number): number {
  if (value === undefined || !/^\d{1,16}(\.\d{1,16})?$/.test(value))
    throw new PlaylistError(`${what} is not a non-negative decimal number: ${show(value ?? '')}`, line);
  return Number(value);
}

function resolveUrl(uri: string, base: string, line?: number): string {
  let url: URL;
  try {
    url = new URL(uri, base);
  } catch {
    throw new PlaylistError(`invalid URI ${show(uri)}`, line);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new PlaylistError(`URI ${show(uri)} is not http(s)`, line);
  return url.href;
}

function checkBase(playlistUrl: string): void {
  try {
    new URL(playlistUrl);
  } catch {
    throw new PlaylistError(`invalid playlist URL ${show(String(playlistUrl))}`);
  }
}

/**
 * EXT-X-PROGRAM-DATE-TIME value (ISO 8601 with a time zone) → ms since the epoch. Parsed by hand:
 * `Date.parse` accepts too much and differs between engines.
 */
function parseDateTime(value: string | undefined, line: number): number {
  const m =
    value === undefined
      ? null
      : /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|([+-])(\d{2}):?(\d{2}))$/.exec(
          value,
        );
  if (!m) throw new PlaylistError(`invalid EXT-X-PROGRAM-DATE-TIME ${show(value ?? '')}`, line);
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const frac = m[7] ? Number(`0.${m[7]}`) * 1000 : 0;
  const offsetMin = m[9] ? (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 60 + Number(m[11])) : 0;
  const daysIn = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (
    mo < 1 ||
    mo > 12 ||
    d < 1 ||
    d > daysIn ||
    h > 23 ||
    mi > 59 ||
    s > 60 ||
    Math.abs(offsetMin) > 24 * 60
  )
    throw new PlaylistError(`invalid EXT-X-PROGRAM-DATE-TIME ${show(value ?? '')}`, line);
  return Date.UTC(y, mo - 1, d, h, mi, s) + Math.round(frac) - offsetMin * 60_000;
}

// ---------------------------------------------------------------- media playlists

/** Parses a media playlist; segment URLs are resolved against `playlistUrl`. Throws {@link PlaylistError}. */
export function parseMediaPlaylist(text: string, playlistUrl: string): MediaPlaylist {
  const lines = splitLines(text);
  checkBase(playlistUrl);
  let targetDurationS: number | undefined;
  let mediaSequence: number | undefined;
  let discontinuitySequence: number | undefined;
  let ended = false;
  let vod = false;
  const segments: MediaSegment[] = [];
  // State of the segment being described (tags apply to the next URI).
  let extinf: { durationS: number; line: number } | undefined;
  let gap = false;
  let pdt: number | null = null;
  let discontinuities = 0;
  let sawDiscontinuity = false;

  const once = (seen: unknown, name: string, line: number) => {
    if (seen !== undefined) throw new PlaylistError(`${name} appears twice`, line);
    if (segments.length > 0 || extinf) throw new PlaylistError(`${name} after the first segment`, line);
  };

  for (const { n, text: line } of lines.slice(1)) {
    if (!line.startsWith('#')) {
      if (!extinf) throw new PlaylistError(`segment URI ${show(line)} without #EXTINF`, n);
      if (segments.length >= MAX_PLAYLIST_ENTRIES)
        throw new PlaylistError(`more than ${MAX_PLAYLIST_ENTRIES} segments`, n);
      const first = mediaSequence ?? 0;
      const seq = first + segments.length;
      if (!Number.isSafeInteger(seq)) throw new PlaylistError('media sequence overflows', n);
      segments.push({
        mediaSequence: seq,
        discontinuitySequence: (discontinuitySequence ?? 0) + discontinuities,
        durationS: extinf.durationS,
        url: resolveUrl(line, playlistUrl, n),
        gap,
        programDateTimeMs: pdt,
      });
      extinf = undefined;
      gap = false;
      pdt = null;
      continue;
    }
    if (!line.startsWith('#EXT')) continue; // a comment
    const { name, value } = tagOf(line);
    switch (name) {
      case 'EXTM3U':
        throw new PlaylistError('#EXTM3U appears twice', n);
      case 'EXTINF': {
        if (extinf) throw new PlaylistError('#EXTINF without a segment URI', extinf.line);
        const durationText = value?.split(',', 1)[0]?.trim();
        const durationS = decimalFloat(durationText, 'EXTINF duration', n);
        if (durationS > MAX_DURATION_S) throw new PlaylistError(`absurd EXTINF duration ${durationS}`, n);
        extinf = { durationS, line: n };
        break;
      }
      case 'EXT-X-TARGETDURATION':
        once(targetDurationS, name, n);
        targetDurationS = decimalInteger(value, name, n);
        if (targetDurationS > MAX_DURATION_S) throw new PlaylistError(`absurd ${name} ${targetDurationS}`, n);
        break;
      case 'EXT-X-MEDIA-SEQUENCE':
        once(mediaSequence, name, n);
        mediaSequence = decimalInteger(value, name, n);
        break;
      case 'EXT-X-DISCONTINUITY-SEQUENCE':
        once(discontinuitySequence, name, n);
        if (sawDiscontinuity) throw new PlaylistError(`${name} after EXT-X-DISCONTINUITY`, n);
        discontinuitySequence = decimalInteger(value, name, n);
        break;
      case 'EXT-X-DISCONTINUITY':
        discontinuities++;
        sawDiscontinuity = true;
        break;
      case 'EXT-X-GAP':
        gap = true;
        break;
      case 'EXT-X-PROGRAM-DATE-TIME':
        pdt = parseDateTime(value, n);
        break;
      case 'EXT-X-ENDLIST':
        ended = true;
        break;
      case 'EXT-X-PLAYLIST-TYPE':
        if (value !== 'VOD' && value !== 'EVENT')
          throw new PlaylistError(`invalid EXT-X-PLAYLIST-TYPE ${show(value ?? '')}`, n);
        vod = value === 'VOD';
        break;
      case 'EXT-X-VERSION':
        decimalInteger(value, name, n);
        break;
      case 'EXT-X-STREAM-INF':
        throw new PlaylistError('a master playlist where a media playlist was expected', n);
      case 'EXT-X-BYTERANGE':
      case 'EXT-X-MAP':
        throw new PlaylistError(`unsupported ${name}`, n);
      case 'EXT-X-KEY':
        if (!/(^|,)METHOD=NONE(,|$)/.test(value ?? '')) throw new PlaylistError('encrypted segments', n);
        break;
      default:
        break; // unknown tags are ignored (RFC 8216 §6.3.1)
    }
  }
  if (extinf) throw new PlaylistError('#EXTINF without a segment URI', extinf.line);
  if (targetDurationS === undefined) throw new PlaylistError('no #EXT-X-TARGETDURATION');
  return {
    mediaSequence: mediaSequence ?? 0,
    discontinuitySequence: discontinuitySequence ?? 0,
    targetDurationS,
    ended,
    vod,
    segments,
  };
}

// ---------------------------------------------------------------- master playlists

/** Parses an attribute list (`A=1,B="x,y",C=0x1F`). Throws on malformed lists and duplicate names. */
export function parseAttributes(value: string, line?: number): Map<string, string> {
  const out = new Map<string, string>();
  const re = /([A-Z0-9-]+)=("[^"\r\n]*"|[^",\s]+)(,|$)/y;
  let at = 0;
  while (at < value.length) {
    re.lastIndex = at;
    const m = re.exec(value);
    if (!m) throw new PlaylistError(`malformed attribute list at ${show(value.slice(at))}`, line);
    const [, key, raw] = m as unknown as [string, string, string];
    if (out.has(key)) throw new PlaylistError(`attribute ${key} appears twice`, line);
    out.set(key, raw);
    at = re.lastIndex;
    if (m[3] === ',' && at === value.length)
      throw new PlaylistError('trailing comma in attribute list', line);
  }
  return out;
}

const unquote = (raw: string, key: string, line: number): string => {
  if (raw.length < 2 || !raw.startsWith('"') || !raw.endsWith('"'))
    throw new PlaylistError(`${key} must be a quoted string`, line);
  return raw.slice(1, -1);
};

function variantName(url: string): string {
  const path = new URL(url).pathname;
  const base = path.slice(path.lastIndexOf('/') + 1);
  return base.endsWith('.m3u8') ? base.slice(0, -'.m3u8'.length) : base;
}

/** Parses a master (multivariant) playlist; variant URLs are resolved against `url`. */
export function parseMasterPlaylist(text: string, url: string): MasterPlaylist {
  const lines = splitLines(text);
  checkBase(url);
  const variants: Variant[] = [];
  let pending: { attrs: Omit<Variant, 'name' | 'url'>; line: number } | undefined;

  for (const { n, text: line } of lines.slice(1)) {
    if (!line.startsWith('#')) {
      if (!pending) throw new PlaylistError(`URI ${show(line)} without #EXT-X-STREAM-INF`, n);
      if (variants.length >= MAX_PLAYLIST_ENTRIES)
        throw new PlaylistError(`more than ${MAX_PLAYLIST_ENTRIES} variants`, n);
      const abs = resolveUrl(line, url, n);
      variants.push({ name: variantName(abs), url: abs, ...pending.attrs });
      pending = undefined;
      continue;
    }
    if (!line.startsWith('#EXT')) continue;
    const { name, value } = tagOf(line);
    switch (name) {
      case 'EXTM3U':
        throw new PlaylistError('#EXTM3U appears twice', n);
      case 'EXTINF':
      case 'EXT-X-TARGETDURATION':
      case 'EXT-X-MEDIA-SEQUENCE':
        throw new PlaylistError('a media playlist where a master playlist was expected', n);
      case 'EXT-X-STREAM-INF': {
        if (pending) throw new PlaylistError('#EXT-X-STREAM-INF without a URI', pending.line);
        pending = { attrs: streamInf(value ?? '', n), line: n };
        break;
      }
      default:
        break;
    }
  }
  if (pending) throw new PlaylistError('#EXT-X-STREAM-INF without a URI', pending.line);
  if (variants.length === 0) throw new PlaylistError('master playlist lists no variant');
  return { variants };
}

function streamInf(value: string, n: number): Omit<Variant, 'name' | 'url'> {
  const attrs = parseAttributes(value, n);
  const bandwidth = attrs.get('BANDWIDTH');
  if (bandwidth === undefined) throw new PlaylistError('#EXT-X-STREAM-INF without BANDWIDTH', n);
  const out: Omit<Variant, 'name' | 'url'> = { bandwidthBps: decimalInteger(bandwidth, 'BANDWIDTH', n) };
  const avg = attrs.get('AVERAGE-BANDWIDTH');
  if (avg !== undefined) out.averageBandwidthBps = decimalInteger(avg, 'AVERAGE-BANDWIDTH', n);
  const res = attrs.get('RESOLUTION');
  if (res !== undefined) {
    const m = /^(\d{1,5})x(\d{1,5})$/.exec(res);
    if (!m) throw new PlaylistError(`invalid RESOLUTION ${show(res)}`, n);
    out.width = Number(m[1]);
    out.height = Number(m[2]);
  }
  const codecs = attrs.get('CODECS');
  if (codecs !== undefined) out.codecs = unquote(codecs, 'CODECS', n);
  const fps = attrs.get('FRAME-RATE');
  if (fps !== undefined) {
    out.frameRate = decimalFloat(fps, 'FRAME-RATE', n);
    if (out.frameRate > 1000) throw new PlaylistError(`absurd FRAME-RATE ${fps}`, n);
  }
  return out;
}
