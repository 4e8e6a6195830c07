/**
 * The hand-written validators clients run on what the tracker sends (protocol/tracker-validate.ts)
 * against zod schemas: the tracker's own `signalDataSchema`, and the schemas clients used before the
 * browser bundle dropped zod (kept here as the reference). Every valid message and every mutation of it
 * (wrong types, bounds ±1, bad patterns, extra and missing fields, non-finite and unsafe numbers) must
 * be accepted or refused by both alike, and accepted ones must come out the same.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import {
  CHANNEL_STATUSES,
  TRACKER_ERROR_CODES,
  TRACKER_PUSH_LIMITS as L,
  SIGNAL_LIMITS,
  channelIdSchema,
  parseAckError,
  parseChannelInfo,
  parseJoinResult,
  parseNeighboursUpdate,
  parsePushedSignal,
  parseSignalData,
  peerIdSchema,
  renditionSchema,
  signalDataSchema,
  type Validated,
} from '../../protocol/index.ts';

// ---- the reference: the zod schemas peer/platform/tracker-connection.ts used until zod left the bundle ----

const peerList = z.array(peerIdSchema).max(L.peerList);
const neighboursSchema = z.object({ add: peerList, remove: peerList, firstTier: z.boolean() });
const pushedSignalSchema = z.object({ from: peerIdSchema, data: signalDataSchema });
const iceServerSchema = z.object({
  urls: z.union([z.string().max(L.urlChars), z.array(z.string().max(L.urlChars)).max(L.iceUrls)]),
  username: z.string().max(L.credentialChars).optional(),
  credential: z.string().max(L.credentialChars).optional(),
});
const channelInfoSchema = z.looseObject({
  id: channelIdSchema,
  title: z.string().max(L.titleChars),
  status: z.enum(CHANNEL_STATUSES),
  originUrl: z.string().max(L.urlChars),
  publicKey: z.string().max(L.publicKeyChars),
  segmentDurationS: z.number().positive().max(L.maxSegmentDurationS),
  renditions: z
    .array(
      z.object({
        name: renditionSchema,
        width: z.number().int().nonnegative(),
        height: z.number().int().nonnegative(),
        bandwidthBps: z.number().nonnegative(),
      }),
    )
    .max(L.renditions),
  livePlaylist: z.string().max(L.urlChars).nullable(),
  recordings: z
    .array(
      z.object({
        id: z.string().max(L.recordingIdChars),
        title: z.string().max(L.titleChars),
        master: z.string().max(L.urlChars),
      }),
    )
    .max(L.recordings),
  viewers: z.number().int().nonnegative(),
  offload: z.number().nullable(),
});
const joinResultSchema = z.looseObject({
  peerId: peerIdSchema,
  rendition: renditionSchema,
  iceServers: z.array(iceServerSchema).max(L.iceServers),
  natProbe: z
    .array(
      z
        .string()
        .max(L.urlChars)
        .regex(/^stun:[^\s?#/]+$/),
    )
    .length(2)
    .optional(),
  channel: channelInfoSchema,
  neighbours: peerList,
  firstTier: z.boolean(),
  reportIntervalMs: z.number().finite().positive(),
});
const ackErrorSchema = z.object({
  ok: z.literal(false),
  error: z.object({ code: z.enum(TRACKER_ERROR_CODES), message: z.string().max(L.errorMessageChars) }),
});

// ---- mutations ----

type Json = unknown;
const PEER = 'AbCdEfGh_-123456';
const s = (n: number, c = 'a') => c.repeat(n);
/** Values of every kind, for fields whose good values are given separately. */
const ODD: Json[] = [
  undefined,
  null,
  true,
  0,
  -1,
  1.5,
  NaN,
  Infinity,
  -Infinity,
  2 ** 53,
  '',
  'x',
  [],
  {},
  [PEER],
];

/** Every value at `path` replaced by each candidate, plus the field deleted and an extra one added. */
function* mutations(base: Json, candidates: (path: string[]) => Json[]): Generator<[string, Json]> {
  function* walk(value: Json, path: string[]): Generator<[string, Json]> {
    for (const c of candidates(path)) yield [`${path.join('.')} = ${String(JSON.stringify(c))}`, c];
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++)
        for (const [what, v] of walk(value[i], [...path, String(i)]))
          yield [what, value.map((x, j) => (j === i ? v : x))];
    } else if (value !== null && typeof value === 'object') {
      const o = value as Record<string, Json>;
      yield [`${path.join('.')} + extra`, { ...o, extra: 1 }];
      for (const k of Object.keys(o)) {
        const { [k]: _gone, ...rest } = o;
        yield [`${[...path, k].join('.')} deleted`, rest];
        for (const [what, v] of walk(o[k], [...path, k])) yield [what, { ...o, [k]: v }];
      }
    }
  }
  yield* walk(base, []);
}

/** Odd values plus bounds around every limit and pattern the messages have. */
function candidates(path: string[]): Json[] {
  const last = path.at(-1) ?? '';
  const out = [...ODD];
  const near = (n: number) => [s(n - 1), s(n), s(n + 1)];
  const sizes = [
    L.urlChars,
    L.credentialChars,
    L.titleChars,
    L.publicKeyChars,
    L.recordingIdChars,
    SIGNAL_LIMITS.sdpChars,
    SIGNAL_LIMITS.candidateChars,
    SIGNAL_LIMITS.sdpMidChars,
    SIGNAL_LIMITS.usernameFragmentChars,
  ];
  if (path.length > 0) for (const n of sizes) out.push(...near(n));
  out.push(PEER, `${PEER}x`, 'AbCdEfGh_-12345!', 'demo', 'Demo', '-demo', s(64), s(65), '720p', s(33));
  out.push(...CHANNEL_STATUSES, 'gone', 'offer', 'answer', 'pranswer', 'rollback', 'candidate');
  out.push(...TRACKER_ERROR_CODES.slice(0, 3), 'no-such-code', false);
  out.push(64, 65, 0.5, 3600, 3600.5, 1e-9, -0);
  if (last === 'renditions' || last === 'recordings' || last === 'iceServers' || last === 'urls') {
    const limit = {
      renditions: L.renditions,
      recordings: L.recordings,
      iceServers: L.iceServers,
      urls: L.iceUrls,
    }[last];
    const item = { renditions: RENDITION, recordings: RECORDING, iceServers: ICE, urls: 'stun:x' }[last];
    out.push(Array(limit).fill(item), Array(limit + 1).fill(item));
  }
  if (['add', 'remove', 'neighbours'].includes(last))
    out.push(Array(L.peerList).fill(PEER), Array(L.peerList + 1).fill(PEER));
  if (last === 'message') out.push(...near(L.errorMessageChars));
  if (last === 'natProbe')
    out.push(['stun:a:1'], ['stun:a:1', 'stun:b:2', 'stun:c:3'], ['stun:a:1', 'turn:b:2']);
  if (path.at(-2) === 'natProbe') out.push('stun:a b:1', 'stun:a/b', 'stun:', `stun:${s(L.urlChars)}`);
  return out;
}

const RENDITION = { name: '360p', width: 640, height: 360, bandwidthBps: 800_000 };
const RECORDING = { id: 'r1', title: 'Earlier', master: 'recordings/r1/master.m3u8' };
const ICE = { urls: ['turn:127.0.0.1:3478'], username: 'u', credential: 'c' };
const CHANNEL = {
  id: 'demo',
  title: 'Demo',
  status: 'live',
  originUrl: 'http://127.0.0.1:8080',
  publicKey: s(43),
  segmentDurationS: 2,
  renditions: [RENDITION],
  livePlaylist: 'live/master.m3u8',
  recordings: [RECORDING],
  viewers: 3,
  offload: 0.5,
  addedByANewerTracker: { x: 1 },
};
const SIGNALS: Json[] = [
  { type: 'offer', sdp: 'v=0' },
  { type: 'rollback' },
  { renegotiate: true },
  {
    type: 'candidate',
    candidate: { candidate: 'candidate:1', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'uf' },
  },
  { type: 'candidate', candidate: { candidate: '', sdpMid: null, sdpMLineIndex: null } },
];

function agree<T>(
  name: string,
  schema: z.ZodType,
  validate: (v: unknown) => Validated<T>,
  bases: Json[],
): void {
  test(`${name}: same verdicts and output as the zod schema`, () => {
    let accepted = 0;
    let refused = 0;
    for (const base of bases)
      for (const [what, input] of [['as is', base] as [string, Json], ...mutations(base, candidates)]) {
        const want = schema.safeParse(input);
        const got = validate(input);
        assert.equal(
          got.ok,
          want.success,
          `${name}, ${what}: zod says ${want.success ? 'valid' : 'invalid'}`,
        );
        if (got.ok && want.success) {
          assert.deepEqual(
            JSON.parse(JSON.stringify(got.value)),
            JSON.parse(JSON.stringify(want.data)),
            what,
          );
          accepted++;
        } else if (!got.ok) {
          assert.match(got.message, /^[\w.]+: \S/, 'names where and why');
          refused++;
        }
      }
    // The corpus exercises both verdicts in quantity.
    assert.ok(accepted >= 5 && refused >= 50, `${accepted} accepted, ${refused} refused`);
  });
}

describe('client-side validation of tracker messages, without zod', () => {
  agree('signal data', signalDataSchema, parseSignalData, SIGNALS);
  agree('neighbours', neighboursSchema, parseNeighboursUpdate, [
    { add: [PEER], remove: [], firstTier: false },
  ]);
  agree(
    'signal push',
    pushedSignalSchema,
    parsePushedSignal,
    SIGNALS.map((data) => ({ from: PEER, data })),
  );
  agree('channel', channelInfoSchema, parseChannelInfo, [
    CHANNEL,
    { ...CHANNEL, livePlaylist: null, offload: null },
  ]);
  agree('join answer', joinResultSchema, parseJoinResult, [
    {
      ok: true,
      peerId: PEER,
      rendition: '360p',
      iceServers: [ICE, { urls: 'stun:127.0.0.1:3478' }],
      channel: CHANNEL,
      neighbours: [PEER],
      firstTier: true,
      reportIntervalMs: 5000,
    },
    {
      ok: true,
      peerId: PEER,
      rendition: '360p',
      iceServers: [],
      natProbe: ['stun:203.0.113.10:3478', 'stun:203.0.113.11:3479'],
      channel: CHANNEL,
      neighbours: [],
      firstTier: false,
      reportIntervalMs: 5000,
    },
  ]);
  agree('refusal', ackErrorSchema, parseAckError, [
    { ok: false, error: { code: 'unknown-channel', message: 'no such channel' } },
  ]);

  test('refusals name the field', () => {
    const r = parseNeighboursUpdate({ add: [PEER, 'nope'], remove: [], firstTier: true });
    assert.deepEqual(r, { ok: false, message: 'add.1: invalid peer id' });
    const big = parseChannelInfo({ ...CHANNEL, recordings: Array(L.recordings + 1).fill(RECORDING) });
    assert.deepEqual(big, { ok: false, message: `recordings: more than ${L.recordings} items` });
  });
});
