/**
 * What clients check in the tracker's messages (pushes and acks), hand-written so that browsers need no
 * schema library: the tracker validates its own input with zod (`tracker-schemas.ts`), and a browser
 * bundle with zod in it weighed three times as much. Each validator is as strict as the zod schema it
 * replaces (test/protocol/tracker-validate.test.ts holds them side by side): bounded strings and
 * arrays, the same patterns, safe integers, finite numbers; objects the client reads fields from keep
 * their extra fields (newer trackers may add some), the small ones are rebuilt from the known fields.
 * Invalid input is reported, never thrown.
 */
import { CHANNEL_ID_PATTERN, RENDITION_NAME_PATTERN } from './segment-id.ts';
import {
  CHANNEL_STATUSES,
  PEER_ID_PATTERN,
  SDP_TYPES,
  SIGNAL_LIMITS,
  type ChannelInfo,
  type IceServer,
  type JoinResult,
  type NeighboursUpdate,
  type SignalData,
} from './tracker.ts';
import { TRACKER_ERROR_CODES, type TrackerErrorCode } from './errors.ts';

export type Validated<T> = { ok: true; value: T } | { ok: false; message: string };

/** Bounds of what a client accepts from the tracker (generous: they only stop absurd messages). */
export const TRACKER_PUSH_LIMITS = {
  peerList: 1000,
  parents: 16,
  iceServers: 64,
  iceUrls: 16,
  urlChars: 2048,
  credentialChars: 1024,
  titleChars: 1000,
  publicKeyChars: 256,
  maxSegmentDurationS: 3600,
  renditions: 64,
  recordings: 10_000,
  recordingIdChars: 256,
  errorMessageChars: 10_000,
} as const;
const L = TRACKER_PUSH_LIMITS;

// ---- the pieces: each returns the checked value or throws Invalid naming where and why ----

class Invalid extends Error {}
type Obj = Record<string, unknown>;

function fail(at: string, why: string): never {
  throw new Invalid(`${at || 'input'}: ${why}`);
}

const join = (at: string, key: string | number): string => (at ? `${at}.${key}` : String(key));

function object(v: unknown, at: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(at, 'expected an object');
  return v as Obj;
}

/** A strict object: no field but these. */
function only(o: Obj, fields: readonly string[], at: string): void {
  for (const k of Object.keys(o)) if (!fields.includes(k)) fail(at, `unknown field ${JSON.stringify(k)}`);
}

function str(v: unknown, at: string, maxChars: number, minChars = 0): string {
  if (typeof v !== 'string') fail(at, 'expected a string');
  if (v.length > maxChars) fail(at, `longer than ${maxChars} characters`);
  if (v.length < minChars) fail(at, `shorter than ${minChars} characters`);
  return v;
}

function matching(v: unknown, at: string, pattern: RegExp, what: string): string {
  if (typeof v !== 'string' || !pattern.test(v)) fail(at, `invalid ${what}`);
  return v;
}

const peerId = (v: unknown, at: string): string => matching(v, at, PEER_ID_PATTERN, 'peer id');
const channelId = (v: unknown, at: string): string => matching(v, at, CHANNEL_ID_PATTERN, 'channel id');
const rendition = (v: unknown, at: string): string =>
  matching(v, at, RENDITION_NAME_PATTERN, 'rendition name');

interface NumberRule {
  int?: boolean;
  min?: number;
  max?: number;
  /** Strictly greater than 0. */
  positive?: boolean;
}

/** A finite number (a safe integer with `int`) within the rule's bounds. */
function num(v: unknown, at: string, rule: NumberRule = {}): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(at, 'expected a finite number');
  if (rule.int && !Number.isSafeInteger(v)) fail(at, 'expected an integer');
  if (rule.positive && !(v > 0)) fail(at, 'expected a positive number');
  if (rule.min !== undefined && v < rule.min) fail(at, `less than ${rule.min}`);
  if (rule.max !== undefined && v > rule.max) fail(at, `more than ${rule.max}`);
  return v;
}

function bool(v: unknown, at: string): boolean {
  if (typeof v !== 'boolean') fail(at, 'expected a boolean');
  return v;
}

function oneOf<T extends string>(v: unknown, at: string, values: readonly T[]): T {
  if (!values.includes(v as T)) fail(at, `expected one of ${values.join(', ')}`);
  return v as T;
}

/** An array of at most `max` items (checked before any item is). */
function list<T>(v: unknown, at: string, max: number, item: (v: unknown, at: string) => T): T[] {
  if (!Array.isArray(v)) fail(at, 'expected an array');
  if (v.length > max) fail(at, `more than ${max} items`);
  return v.map((x, i) => item(x, join(at, i)));
}

function nullable<T>(v: unknown, at: string, check: (v: unknown, at: string) => T): T | null {
  return v === null ? null : check(v, at);
}

/** Runs a check: its value, or where and why it failed. */
function validate<T>(input: unknown, check: (v: unknown) => T): Validated<T> {
  try {
    return { ok: true, value: check(input) };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, message: err.message };
    throw err;
  }
}

// ---- the messages ----

function signalData(v: unknown, at: string): SignalData {
  const o = object(v, at);
  if ('renegotiate' in o) {
    only(o, ['renegotiate'], at);
    if (o.renegotiate !== true) fail(join(at, 'renegotiate'), 'expected true');
    return { renegotiate: true };
  }
  if (o.type === 'candidate') {
    only(o, ['type', 'candidate'], at);
    const cat = join(at, 'candidate');
    const c = object(o.candidate, cat);
    only(c, ['candidate', 'sdpMid', 'sdpMLineIndex', 'usernameFragment'], cat);
    const out: Extract<SignalData, { type: 'candidate' }>['candidate'] = {
      candidate: str(c.candidate, join(cat, 'candidate'), SIGNAL_LIMITS.candidateChars),
    };
    if (c.sdpMid !== undefined)
      out.sdpMid = nullable(c.sdpMid, join(cat, 'sdpMid'), (x, a) => str(x, a, SIGNAL_LIMITS.sdpMidChars));
    if (c.sdpMLineIndex !== undefined)
      out.sdpMLineIndex = nullable(c.sdpMLineIndex, join(cat, 'sdpMLineIndex'), (x, a) =>
        num(x, a, { int: true, min: 0, max: SIGNAL_LIMITS.maxSdpMLineIndex }),
      );
    if (c.usernameFragment !== undefined)
      out.usernameFragment = nullable(c.usernameFragment, join(cat, 'usernameFragment'), (x, a) =>
        str(x, a, SIGNAL_LIMITS.usernameFragmentChars),
      );
    return { type: 'candidate', candidate: out };
  }
  only(o, ['type', 'sdp'], at);
  const type = oneOf(o.type, join(at, 'type'), SDP_TYPES);
  if (o.sdp === undefined) return { type };
  return { type, sdp: str(o.sdp, join(at, 'sdp'), SIGNAL_LIMITS.sdpChars, 1) };
}

function iceServer(v: unknown, at: string): IceServer {
  const o = object(v, at);
  const urls = Array.isArray(o.urls)
    ? list(o.urls, join(at, 'urls'), L.iceUrls, (x, a) => str(x, a, L.urlChars))
    : str(o.urls, join(at, 'urls'), L.urlChars);
  const out: IceServer = { urls };
  if (o.username !== undefined) out.username = str(o.username, join(at, 'username'), L.credentialChars);
  if (o.credential !== undefined)
    out.credential = str(o.credential, join(at, 'credential'), L.credentialChars);
  return out;
}

/** Two `stun:` URLs (an RFC 5780 server's primary and alternate addresses). */
function natProbe(v: unknown, at: string): string[] {
  const urls = list(v, at, 2, (x, a) => matching(str(x, a, L.urlChars), a, /^stun:[^\s?#/]+$/, 'stun: URL'));
  if (urls.length !== 2) fail(at, 'expected two stun: URLs');
  return urls;
}

function channelInfo(v: unknown, at: string): ChannelInfo {
  const o = object(v, at);
  const f = (k: string) => join(at, k);
  return {
    ...o,
    id: channelId(o.id, f('id')),
    title: str(o.title, f('title'), L.titleChars),
    status: oneOf(o.status, f('status'), CHANNEL_STATUSES),
    originUrl: str(o.originUrl, f('originUrl'), L.urlChars),
    publicKey: str(o.publicKey, f('publicKey'), L.publicKeyChars),
    segmentDurationS: num(o.segmentDurationS, f('segmentDurationS'), {
      positive: true,
      max: L.maxSegmentDurationS,
    }),
    renditions: list(o.renditions, f('renditions'), L.renditions, (x, a) => {
      const r = object(x, a);
      return {
        name: rendition(r.name, join(a, 'name')),
        width: num(r.width, join(a, 'width'), { int: true, min: 0 }),
        height: num(r.height, join(a, 'height'), { int: true, min: 0 }),
        bandwidthBps: num(r.bandwidthBps, join(a, 'bandwidthBps'), { min: 0 }),
      };
    }),
    livePlaylist: nullable(o.livePlaylist, f('livePlaylist'), (x, a) => str(x, a, L.urlChars)),
    recordings: list(o.recordings, f('recordings'), L.recordings, (x, a) => {
      const r = object(x, a);
      return {
        id: str(r.id, join(a, 'id'), L.recordingIdChars),
        title: str(r.title, join(a, 'title'), L.titleChars),
        master: str(r.master, join(a, 'master'), L.urlChars),
      };
    }),
    viewers: num(o.viewers, f('viewers'), { int: true, min: 0 }),
    offload: nullable(o.offload, f('offload'), (x, a) => num(x, a)),
  };
}

const peerList = (v: unknown, at: string): string[] => list(v, at, L.peerList, peerId);

/** Signaling data (`signal` pushes; what a peer link hands its peer through the tracker). */
export function parseSignalData(input: unknown): Validated<SignalData> {
  return validate(input, (v) => signalData(v, ''));
}

/** `neighbours` push. */
export function parseNeighboursUpdate(input: unknown): Validated<NeighboursUpdate> {
  return validate(input, (v) => {
    const o = object(v, '');
    return {
      add: peerList(o.add, 'add'),
      remove: peerList(o.remove, 'remove'),
      firstTier: bool(o.firstTier, 'firstTier'),
      ...(o.parents !== undefined && { parents: list(o.parents, 'parents', L.parents, peerId) }),
    };
  });
}

/** `signal` push: signaling data relayed from another peer. */
export function parsePushedSignal(input: unknown): Validated<{ from: string; data: SignalData }> {
  return validate(input, (v) => {
    const o = object(v, '');
    return { from: peerId(o.from, 'from'), data: signalData(o.data, 'data') };
  });
}

/** `channel` push, and the channel in a join answer. */
export function parseChannelInfo(input: unknown): Validated<ChannelInfo> {
  return validate(input, (v) => channelInfo(v, ''));
}

/** The tracker's answer to `join` when it accepted (the caller checked `ok: true`). */
export function parseJoinResult(input: unknown): Validated<JoinResult> {
  return validate(input, (v) => {
    const o = object(v, '');
    return {
      ...o,
      peerId: peerId(o.peerId, 'peerId'),
      rendition: rendition(o.rendition, 'rendition'),
      iceServers: list(o.iceServers, 'iceServers', L.iceServers, iceServer),
      ...(o.natProbe !== undefined && { natProbe: natProbe(o.natProbe, 'natProbe') }),
      channel: channelInfo(o.channel, 'channel'),
      neighbours: peerList(o.neighbours, 'neighbours'),
      firstTier: bool(o.firstTier, 'firstTier'),
      reportIntervalMs: num(o.reportIntervalMs, 'reportIntervalMs', { positive: true }),
    };
  });
}

/** A refusal: `{ ok: false, error: { code, message } }` (other fields are dropped). */
export function parseAckError(
  input: unknown,
): Validated<{ ok: false; error: { code: TrackerErrorCode; message: string } }> {
  return validate(input, (v) => {
    const o = object(v, '');
    if (o.ok !== false) fail('ok', 'expected false');
    const e = object(o.error, 'error');
    return {
      ok: false as const,
      error: {
        code: oneOf(e.code, 'error.code', TRACKER_ERROR_CODES),
        message: str(e.message, 'error.message', L.errorMessageChars),
      },
    };
  });
}
