import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { decodeMessage, encodeMessage, HaveSet } from '../../protocol/wire.ts';
import {
  ABSENT_REASONS,
  MAX_CHUNK_BYTES,
  MAX_HAVE_RANGES,
  MAX_MESSAGE_BYTES,
  MAX_SEGMENT_BYTES,
  PEER_ERROR_CODES,
  WIRE_VERSION,
  WireError,
  type WireMessage,
} from '../../protocol/wire-types.ts';
import { fromHex, toHex } from '../../protocol/encoding.ts';

const MAX = Number.MAX_SAFE_INTEGER;
const PEER = 'AbCdEfGh_-012345';
/** Varint of 2^53 − 1. */
const VMAX = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f];

// ---------------------------------------------------------------------------------------------------
// Helpers

/** sfc32: small, fast, seedable. */
function prng(seed: number): () => number {
  let a = 0x9e3779b9;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed >>> 0;
  const next = (): number => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 16; i++) next();
  return next;
}

const SEED = process.env.WIRE_FUZZ_SEED ? Number(process.env.WIRE_FUZZ_SEED) : crypto.randomInt(2 ** 31);

/** Runs `fn` with a PRNG; on failure, the error names the seed to reproduce it with. */
function seeded(fn: (rand: () => number) => void): void {
  try {
    fn(prng(SEED));
  } catch (err) {
    const note = `reproduce with WIRE_FUZZ_SEED=${SEED}`;
    console.error(note);
    const e = err instanceof Error ? err : new Error(String(err));
    e.message = `${e.message}\n  ${note}`;
    e.stack = `${e.stack ?? ''}\n  ${note}`;
    throw e;
  }
}

const bytesOf = (...parts: (number | number[] | string | Uint8Array)[]): Uint8Array => {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === 'number') out.push(p);
    else if (typeof p === 'string') out.push(...new TextEncoder().encode(p));
    else out.push(...p);
  }
  return Uint8Array.from(out);
};

/** A u8-length-prefixed string (raw bytes allowed). */
const str = (s: string | number[]): number[] => {
  const b = typeof s === 'string' ? [...new TextEncoder().encode(s)] : s;
  return [b.length, ...b];
};

const show = (bytes: Uint8Array): string =>
  bytes instanceof Uint8Array ? toHex(bytes.subarray(0, 64)) : String(bytes);

function expectViolation(bytes: Uint8Array, why?: RegExp): void {
  assert.throws(
    () => decodeMessage(bytes),
    (err: unknown) => {
      assert.ok(err instanceof WireError, `expected WireError, got ${String(err)}`);
      assert.equal(err.code, 'peer-protocol-violation', `${show(bytes)}: ${err.message}`);
      if (why) assert.match(err.message, why);
      return true;
    },
    `accepted ${show(bytes)}`,
  );
}

function roundTrip(msg: WireMessage): Uint8Array {
  const bytes = encodeMessage(msg);
  assert.ok(bytes.length <= MAX_MESSAGE_BYTES);
  assert.deepEqual(decodeMessage(bytes), msg);
  return bytes;
}

const chars = (n: number, alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789_-'): string =>
  Array.from({ length: n }, (_, i) => alphabet[i % alphabet.length]).join('');

// ---------------------------------------------------------------------------------------------------
// Layout

describe('wire layout', () => {
  test('golden encodings', () => {
    const cases: [WireMessage, string][] = [
      [
        { type: 'hello', version: 2, peerId: PEER, channel: 'news' },
        '0102' + '10' + toHex(new TextEncoder().encode(PEER)) + '04' + '6e657773',
      ],
      [
        {
          type: 'have',
          rendition: '720p',
          reset: true,
          ranges: [
            [10, 12],
            [17, 18],
          ],
        },
        '02' + '04' + '37323070' + '01' + '02' + '0a02' + '0401',
      ],
      [{ type: 'have', rendition: 'a', reset: false, ranges: [] }, '02016100' + '00'],
      [{ type: 'lost', rendition: 'a', ranges: [[300, 300]] }, '030161' + '01' + 'ac0200'],
      [{ type: 'receiving', rendition: '720p', mediaSequence: 300 }, '09' + '04' + '37323070' + 'ac02'],
      [
        { type: 'request', requestId: 7, rendition: 'a', mediaSequence: 128, deadlineMs: 1500 },
        '04' + '07' + '0161' + '8001' + 'dc0b',
      ],
      [
        { type: 'data', requestId: 7, offset: 2, totalBytes: 5, bytes: Uint8Array.of(9, 8, 7) },
        '05' + '07' + '02' + '05' + '090807',
      ],
      [{ type: 'cancel', requestId: MAX }, '06' + toHex(Uint8Array.from(VMAX))],
      [{ type: 'absent', requestId: 0, reason: 'not-held' }, '070000'],
      [{ type: 'absent', requestId: 1, reason: 'busy' }, '070101'],
      [{ type: 'absent', requestId: 1, reason: 'evicted' }, '070102'],
      [{ type: 'bye', code: 'bye' }, '0800'],
      [{ type: 'bye', code: 'peer-protocol-violation' }, '0801'],
      [{ type: 'bye', code: 'peer-version-mismatch' }, '0802'],
      [{ type: 'bye', code: 'peer-sent-bad-segment' }, '0803'],
      [{ type: 'bye', code: 'peer-timeout' }, '0804'],
      [{ type: 'bye', code: 'peer-wrong-channel' }, '0805'],
      [{ type: 'bye', code: 'peer-over-budget' }, '0806'],
      [{ type: 'bye', code: 'peer-unresponsive' }, '0807'],
    ];
    for (const [msg, hex] of cases) {
      assert.equal(toHex(encodeMessage(msg)), hex, msg.type);
      assert.deepEqual(decodeMessage(fromHex(hex)!), msg, hex);
    }
  });

  test('varint boundaries are minimal LEB128', () => {
    const cases: [number, string][] = [
      [0, '00'],
      [1, '01'],
      [127, '7f'],
      [128, '8001'],
      [16383, 'ff7f'],
      [16384, '808001'],
      [2 ** 32, '8080808010'],
      [2 ** 49 - 1, 'ffffffffffff7f'],
      [2 ** 49, '8080808080808001'],
      [MAX, 'ffffffffffffff0f'],
    ];
    for (const [n, hex] of cases) {
      assert.equal(toHex(encodeMessage({ type: 'cancel', requestId: n })), '06' + hex, String(n));
      assert.deepEqual(decodeMessage(fromHex('06' + hex)!), { type: 'cancel', requestId: n });
    }
  });

  test('every absent reason and close code has a wire value', () => {
    for (const reason of ABSENT_REASONS) roundTrip({ type: 'absent', requestId: 3, reason });
    for (const code of ['bye', ...PEER_ERROR_CODES] as const) roundTrip({ type: 'bye', code });
  });
});

// ---------------------------------------------------------------------------------------------------
// Round trips

describe('round trips with edge values', () => {
  test('hello', () => {
    for (const channel of ['a', '0', chars(64), 'a-b_c']) {
      for (const peerId of [PEER, '0000000000000000', '----------------', 'ZZZZZZZZZZZZZZZZ']) {
        roundTrip({ type: 'hello', version: WIRE_VERSION, peerId, channel });
      }
    }
  });

  test('have and lost', () => {
    const rangeSets: [number, number][][] = [
      [],
      [[0, 0]],
      [[0, MAX]],
      [[MAX, MAX]],
      [
        [MAX - 1, MAX - 1],
        [MAX, MAX],
      ],
      [
        [0, 0],
        [1, 1],
      ], // adjacent ranges are allowed (not merged)
      [
        [0, 5],
        [MAX - 5, MAX],
      ],
      Array.from({ length: MAX_HAVE_RANGES }, (_, i): [number, number] => [i * 10, i * 10 + 3]),
      Array.from({ length: MAX_HAVE_RANGES }, (_, i): [number, number] => [
        MAX - (MAX_HAVE_RANGES - i) * 2 ** 40,
        MAX - (MAX_HAVE_RANGES - i) * 2 ** 40 + 2 ** 39,
      ]),
    ];
    for (const ranges of rangeSets) {
      for (const rendition of ['a', chars(32), '1080p60']) {
        roundTrip({ type: 'have', rendition, reset: true, ranges });
        roundTrip({ type: 'have', rendition, reset: false, ranges });
        roundTrip({ type: 'lost', rendition, ranges });
      }
    }
    // The largest possible have message stays far below the limit.
    const worst = Array.from({ length: MAX_HAVE_RANGES }, (_, i): [number, number] => [
      i * 2 ** 43,
      i * 2 ** 43 + 2 ** 42,
    ]);
    const bytes = roundTrip({ type: 'have', rendition: chars(32), reset: true, ranges: worst });
    assert.ok(bytes.length < MAX_MESSAGE_BYTES / 2, `${bytes.length}`);
  });

  test('request, cancel, absent', () => {
    for (const n of [0, 1, 127, 128, 2 ** 31, 2 ** 32, MAX]) {
      roundTrip({ type: 'request', requestId: n, rendition: 'r', mediaSequence: n, deadlineMs: n });
      roundTrip({
        type: 'request',
        requestId: MAX - n,
        rendition: chars(32),
        mediaSequence: 5,
        deadlineMs: 0,
      });
      roundTrip({ type: 'cancel', requestId: n });
      roundTrip({ type: 'absent', requestId: n, reason: 'busy' });
    }
  });

  test('data: 1 byte to a full chunk, up to the end of the largest segment, returned as a view', () => {
    const full = new Uint8Array(MAX_CHUNK_BYTES);
    for (let i = 0; i < full.length; i++) full[i] = (i * 31) & 0xff;
    const cases: WireMessage[] = [
      { type: 'data', requestId: 0, offset: 0, totalBytes: 1, bytes: Uint8Array.of(0) },
      { type: 'data', requestId: MAX, offset: 0, totalBytes: MAX_CHUNK_BYTES, bytes: full },
      {
        type: 'data',
        requestId: MAX,
        offset: MAX_SEGMENT_BYTES - MAX_CHUNK_BYTES,
        totalBytes: MAX_SEGMENT_BYTES,
        bytes: full,
      },
      {
        type: 'data',
        requestId: 1,
        offset: MAX_SEGMENT_BYTES - 1,
        totalBytes: MAX_SEGMENT_BYTES,
        bytes: full.subarray(5, 6),
      },
    ];
    for (const msg of cases) {
      const bytes = roundTrip(msg);
      assert.ok(bytes.length <= MAX_MESSAGE_BYTES, `${bytes.length}`);
      const decoded = decodeMessage(bytes);
      assert.equal(decoded.type, 'data');
      if (decoded.type !== 'data') return;
      // A view into the input, not a copy.
      assert.equal(decoded.bytes.buffer, bytes.buffer);
      assert.equal(decoded.bytes.byteOffset + decoded.bytes.length, bytes.byteOffset + bytes.length);
    }
    // The encoder copies: the caller may reuse its buffer.
    const src = Uint8Array.of(1, 2, 3);
    const enc = encodeMessage({ type: 'data', requestId: 1, offset: 0, totalBytes: 3, bytes: src });
    src[0] = 99;
    assert.deepEqual([...enc.subarray(-3)], [1, 2, 3]);
  });

  test('decodes from a subarray of a larger buffer', () => {
    const inner = encodeMessage({ type: 'lost', rendition: 'x', ranges: [[4, 9]] });
    const outer = new Uint8Array(inner.length + 10).fill(0xee);
    outer.set(inner, 5);
    assert.deepEqual(decodeMessage(outer.subarray(5, 5 + inner.length)), {
      type: 'lost',
      rendition: 'x',
      ranges: [[4, 9]],
    });
  });
});

// ---------------------------------------------------------------------------------------------------
// Rejections

describe('decoder rejects malformed input with peer-protocol-violation', () => {
  const valid: WireMessage[] = [
    { type: 'hello', version: 2, peerId: PEER, channel: 'news' },
    { type: 'receiving', rendition: '720p', mediaSequence: MAX },
    {
      type: 'have',
      rendition: '720p',
      reset: true,
      ranges: [
        [10, 12],
        [17, 18],
      ],
    },
    { type: 'have', rendition: '720p', reset: false, ranges: [] },
    { type: 'lost', rendition: '720p', ranges: [[MAX, MAX]] },
    { type: 'request', requestId: 300, rendition: '720p', mediaSequence: MAX, deadlineMs: 2000 },
    { type: 'cancel', requestId: 300 },
    { type: 'absent', requestId: 300, reason: 'evicted' },
    { type: 'bye', code: 'peer-timeout' },
  ];

  test('empty input, non-Uint8Array input, unknown type bytes', () => {
    expectViolation(new Uint8Array(0), /empty/);
    expectViolation([1, 2] as unknown as Uint8Array, /byte array/);
    for (const t of [0x00, 0x0a, 0x10, 0x7f, 0x80, 0xff])
      expectViolation(Uint8Array.of(t, 0, 0), /unknown message type/);
  });

  test('truncated: every proper prefix of every non-data message', () => {
    for (const msg of valid) {
      const bytes = encodeMessage(msg);
      for (let n = 0; n < bytes.length; n++) expectViolation(bytes.subarray(0, n));
    }
    // data: a cut inside the header (a cut inside the payload is a shorter, valid chunk).
    expectViolation(bytesOf(5, 0x81), /truncated/);
    expectViolation(bytesOf(5, 1, 0), /truncated/);
  });

  test('trailing bytes after every non-data message', () => {
    for (const msg of valid) {
      for (const extra of [[0], [0xff], [1, 2, 3]])
        expectViolation(bytesOf(encodeMessage(msg), extra), /trailing/);
    }
  });

  test('over-long, non-minimal and > 53-bit varints', () => {
    expectViolation(bytesOf(6, 0x80, 0x00), /non-minimal/);
    expectViolation(bytesOf(6, 0x81, 0x00), /non-minimal/);
    expectViolation(bytesOf(6, 0xff, 0xff, 0x00), /non-minimal/);
    expectViolation(bytesOf(6, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10), /53 bits/); // 2^53
    expectViolation(bytesOf(6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), /53 bits/);
    expectViolation(bytesOf(6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x8f, 0x00), /53 bits/); // 9 bytes
    expectViolation(bytesOf(6, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01), /53 bits/);
    expectViolation(bytesOf(6, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00), /non-minimal/); // 8-byte zero
    // The same rules in every numeric field.
    expectViolation(bytesOf(4, 0x80, 0x00, str('a'), 1, 1), /requestId/);
    expectViolation(
      bytesOf(4, 1, str('a'), 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 1),
      /mediaSequence/,
    );
    expectViolation(bytesOf(4, 1, str('a'), 1, 0x85, 0x00), /deadlineMs/);
    expectViolation(bytesOf(5, 1, 0x80, 0x00, 5, 1), /offset/);
    expectViolation(bytesOf(5, 1, 0, 0x85, 0x00, 1), /totalBytes/);
    expectViolation(bytesOf(2, str('a'), 0, 0x81, 0x00), /range count/);
    expectViolation(bytesOf(2, str('a'), 0, 1, 0x80, 0x00, 1), /range from/);
    expectViolation(bytesOf(3, str('a'), 1, 0, 0x80, 0x00), /range span/);
    expectViolation(bytesOf(3, str('a'), 2, 0, 1, 0x80, 0x00, 1), /range gap/);
    expectViolation(bytesOf(1, 0x81, 0x00, str(PEER), str('c')), /version/);
  });

  test('strings: not UTF-8, not matching the patterns, length past the end', () => {
    const hello = (peer: number[], channel: number[]): Uint8Array => bytesOf(1, WIRE_VERSION, peer, channel);
    const okPeer = str(PEER);
    const okChan = str('news');
    // Invalid UTF-8: stray continuation, overlong NUL, surrogate, truncated sequence, 0xff.
    for (const bad of [[0x80], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xff], [0x61, 0xfe]]) {
      expectViolation(hello(okPeer, str(bad)), /channel id: not valid UTF-8/);
      expectViolation(hello(str(bad), okChan), /peer id: not valid UTF-8/);
      expectViolation(bytesOf(2, str(bad), 0, 0), /rendition: not valid UTF-8/);
      expectViolation(bytesOf(4, 0, str(bad), 0, 0), /rendition: not valid UTF-8/);
    }
    // Valid UTF-8 outside the patterns (a BOM included: never silently stripped).
    for (const channel of [
      '',
      'News',
      '-news',
      '_a',
      'é',
      'a b',
      'a.b',
      '\ufeffnews',
      'a\u0000',
      chars(65),
    ]) {
      expectViolation(hello(okPeer, str(channel)), /channel id: invalid/);
    }
    for (const peer of [
      '',
      chars(15),
      chars(17),
      'AbCdEfGh_-01234.',
      'AbCdEfGh_-01234é',
      '\ufeff' + chars(13),
    ]) {
      expectViolation(hello(str(peer), okChan), /peer id: invalid/);
    }
    for (const rendition of ['', '720P', '-720p', chars(33), 'é']) {
      expectViolation(bytesOf(2, str(rendition), 0, 0), /rendition: invalid/);
      expectViolation(bytesOf(3, str(rendition), 0), /rendition: invalid/);
      expectViolation(bytesOf(4, 0, str(rendition), 0, 0), /rendition: invalid/);
    }
    // Length prefix past the end.
    expectViolation(bytesOf(1, WIRE_VERSION, 16, 'AbCdEfGh'), /truncated: peer id/);
    expectViolation(bytesOf(1, WIRE_VERSION, okPeer, 0xff, 'news'), /truncated: channel id/);
    expectViolation(bytesOf(3, 5, 'abc'), /truncated: rendition/);
  });

  test('hello of another version closes with peer-version-mismatch (its remainder is not read)', () => {
    for (const bytes of [
      bytesOf(1, 1, str(PEER), str('news')),
      bytesOf(1, 0),
      bytesOf(1, 0xff, 0x01, 'garbage'),
    ]) {
      assert.throws(
        () => decodeMessage(bytes),
        (err: unknown) => err instanceof WireError && err.code === 'peer-version-mismatch',
      );
    }
    // Version 1 (before `receiving`) and a future version 3.
    for (const version of [1, 3])
      assert.throws(
        () => decodeMessage(encodeMessage({ type: 'hello', version, peerId: PEER, channel: 'news' })),
        (err: unknown) => err instanceof WireError && err.code === 'peer-version-mismatch',
      );
  });

  test('have/lost: flags, too many ranges, truncated or overflowing ranges', () => {
    for (const flags of [0x02, 0x03, 0x80, 0xff]) expectViolation(bytesOf(2, str('a'), flags, 0), /flags/);
    // 1025 ranges, even with all the bytes present (each: gap 1, span 0).
    const many: number[] = [];
    for (let i = 0; i < MAX_HAVE_RANGES + 1; i++) many.push(1, 0);
    expectViolation(bytesOf(2, str('a'), 1, 0x81, 0x08, many), /MAX_HAVE_RANGES/);
    expectViolation(bytesOf(3, str('a'), 0x81, 0x08, many), /MAX_HAVE_RANGES/);
    expectViolation(bytesOf(3, str('a'), ...VMAX), /MAX_HAVE_RANGES/);
    // Exactly 1024 ranges decode; one byte or one pair short is truncated.
    const ok = many.slice(0, MAX_HAVE_RANGES * 2);
    const decoded = decodeMessage(bytesOf(3, str('a'), 0x80, 0x08, ok));
    assert.ok(decoded.type === 'lost' && decoded.ranges.length === MAX_HAVE_RANGES);
    assert.deepEqual(decoded.ranges.slice(0, 3), [
      [1, 1],
      [3, 3],
      [5, 5],
    ]);
    expectViolation(bytesOf(3, str('a'), 0x80, 0x08, ok.slice(0, -2)), /truncated/);
    expectViolation(bytesOf(3, str('a'), 0x80, 0x08, ok.slice(0, -1)), /truncated/);
    // Sequence numbers past 2^53 − 1 (from > to, unsorted or overlapping ranges cannot be written:
    // every delta is unsigned; the encoder refuses them, see below).
    expectViolation(bytesOf(3, str('a'), 1, VMAX, 1), /range 0: sequence number overflow/);
    expectViolation(bytesOf(3, str('a'), 1, 1, VMAX), /range 0: sequence number overflow/);
    expectViolation(bytesOf(3, str('a'), 2, VMAX, 0, 0, 0), /range 1: sequence number overflow/);
    expectViolation(bytesOf(3, str('a'), 2, 0, 0, VMAX, 0), /range 1: sequence number overflow/);
    expectViolation(
      bytesOf(2, str('a'), 0, 2, 0, 0, [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f], 1),
      /range 1: sequence number overflow/,
    );
    // The last representable values are fine.
    const lost = (...body: (number | number[])[]): WireMessage =>
      decodeMessage(bytesOf(3, str('a'), ...body));
    assert.deepEqual(lost(1, 0, VMAX), { type: 'lost', rendition: 'a', ranges: [[0, MAX]] });
    assert.deepEqual(lost(1, VMAX, 0), { type: 'lost', rendition: 'a', ranges: [[MAX, MAX]] });
    assert.deepEqual(lost(2, 0, 0, [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f], 0), {
      type: 'lost',
      rendition: 'a',
      ranges: [
        [0, 0],
        [MAX - 1, MAX - 1],
      ],
    });
    assert.deepEqual(lost(2, 0, 0, [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f], 1), {
      type: 'lost',
      rendition: 'a',
      ranges: [
        [0, 0],
        [MAX - 1, MAX],
      ],
    });
  });

  test('data: empty payload, past totalBytes, segment or chunk too large, message too large', () => {
    expectViolation(bytesOf(5, 1, 0, 5), /empty payload/);
    expectViolation(bytesOf(5, 1, 3, 5, 1, 2, 3), /totalBytes 5/);
    expectViolation(bytesOf(5, 1, 0, 2, 1, 2, 3), /totalBytes 2/);
    expectViolation(bytesOf(5, 1, 0, 0, 1), /totalBytes 0/);
    expectViolation(bytesOf(5, 1, VMAX, VMAX, 1), /MAX_SEGMENT_BYTES/);
    const seg = (n: number): number[] => [...encodeMessage({ type: 'cancel', requestId: n }).subarray(1)];
    expectViolation(bytesOf(5, 1, 0, seg(MAX_SEGMENT_BYTES + 1), 1), /MAX_SEGMENT_BYTES/);
    expectViolation(bytesOf(5, 1, seg(MAX_SEGMENT_BYTES), seg(MAX_SEGMENT_BYTES), 1), /totalBytes/);
    const head = bytesOf(5, 1, 0, seg(MAX_SEGMENT_BYTES));
    const chunk = (n: number): Uint8Array => {
      const b = new Uint8Array(head.length + n);
      b.set(head);
      return b;
    };
    assert.equal(decodeMessage(chunk(MAX_CHUNK_BYTES)).type, 'data');
    expectViolation(chunk(MAX_CHUNK_BYTES + 1), /MAX_CHUNK_BYTES/);
    expectViolation(chunk(MAX_MESSAGE_BYTES + 1 - head.length), /MAX_MESSAGE_BYTES/);
    // The size limit applies to every message, before anything else is read.
    expectViolation(new Uint8Array(MAX_MESSAGE_BYTES + 1), /MAX_MESSAGE_BYTES/);
    expectViolation(bytesOf(3, str('a'), new Uint8Array(MAX_MESSAGE_BYTES)), /MAX_MESSAGE_BYTES/);
  });

  test('absent reasons and bye codes out of the table', () => {
    for (const code of [3, 4, 0x7f, 0x80, 0xff]) expectViolation(bytesOf(7, 1, code), /unknown reason/);
    for (const code of [8, 9, 0x7f, 0x80, 0xff]) expectViolation(bytesOf(8, code), /unknown code/);
  });
});

// ---------------------------------------------------------------------------------------------------
// Encoder misuse

describe('encoder throws TypeError on invalid input', () => {
  const bad: [string, unknown][] = [
    ['null', null],
    ['unknown type', { type: 'ping' }],
    ['version', { type: 'hello', version: -1, peerId: PEER, channel: 'a' }],
    ['version float', { type: 'hello', version: 1.5, peerId: PEER, channel: 'a' }],
    ['peer id short', { type: 'hello', version: 1, peerId: 'abc', channel: 'a' }],
    ['peer id type', { type: 'hello', version: 1, peerId: 42, channel: 'a' }],
    ['channel', { type: 'hello', version: 1, peerId: PEER, channel: 'News' }],
    ['channel long', { type: 'hello', version: 1, peerId: PEER, channel: chars(65) }],
    ['rendition', { type: 'have', rendition: '', reset: true, ranges: [] }],
    ['rendition long', { type: 'lost', rendition: chars(33), ranges: [] }],
    ['reset', { type: 'have', rendition: 'a', reset: 1, ranges: [] }],
    ['ranges not array', { type: 'have', rendition: 'a', reset: true, ranges: {} }],
    ['range not pair', { type: 'lost', rendition: 'a', ranges: [[1]] }],
    ['range from > to', { type: 'lost', rendition: 'a', ranges: [[5, 4]] }],
    ['range negative', { type: 'lost', rendition: 'a', ranges: [[-1, 4]] }],
    ['range unsafe', { type: 'lost', rendition: 'a', ranges: [[0, MAX + 1]] }],
    ['range NaN', { type: 'lost', rendition: 'a', ranges: [[NaN, 1]] }],
    ['range string', { type: 'lost', rendition: 'a', ranges: [['1', 2]] }],
    [
      'ranges overlapping',
      {
        type: 'lost',
        rendition: 'a',
        ranges: [
          [1, 5],
          [5, 6],
        ],
      },
    ],
    [
      'ranges unsorted',
      {
        type: 'lost',
        rendition: 'a',
        ranges: [
          [10, 12],
          [1, 2],
        ],
      },
    ],
    [
      'too many ranges',
      {
        type: 'lost',
        rendition: 'a',
        ranges: Array.from({ length: MAX_HAVE_RANGES + 1 }, (_, i) => [i * 2, i * 2]),
      },
    ],
    ['requestId', { type: 'cancel', requestId: -1 }],
    ['requestId unsafe', { type: 'cancel', requestId: 2 ** 53 }],
    ['requestId missing', { type: 'cancel' }],
    ['mediaSequence', { type: 'request', requestId: 1, rendition: 'a', mediaSequence: 0.5, deadlineMs: 1 }],
    ['deadlineMs', { type: 'request', requestId: 1, rendition: 'a', mediaSequence: 1, deadlineMs: -5 }],
    [
      'deadlineMs Infinity',
      { type: 'request', requestId: 1, rendition: 'a', mediaSequence: 1, deadlineMs: Infinity },
    ],
    ['data empty', { type: 'data', requestId: 1, offset: 0, totalBytes: 1, bytes: new Uint8Array(0) }],
    ['data not bytes', { type: 'data', requestId: 1, offset: 0, totalBytes: 3, bytes: [1, 2, 3] }],
    ['data past total', { type: 'data', requestId: 1, offset: 1, totalBytes: 3, bytes: new Uint8Array(3) }],
    [
      'data segment too large',
      { type: 'data', requestId: 1, offset: 0, totalBytes: MAX_SEGMENT_BYTES + 1, bytes: new Uint8Array(1) },
    ],
    [
      'data chunk too large',
      { type: 'data', requestId: 1, offset: 0, totalBytes: 1e6, bytes: new Uint8Array(MAX_CHUNK_BYTES + 1) },
    ],
    ['absent reason', { type: 'absent', requestId: 1, reason: 'gone' }],
    ['bye code', { type: 'bye', code: 'tired' }],
  ];
  for (const [name, msg] of bad) {
    test(name, () => {
      assert.throws(() => encodeMessage(msg as WireMessage), TypeError);
    });
  }
});

// ---------------------------------------------------------------------------------------------------
// Fuzz

const RENDITION_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789_-';
const PEER_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-';

function generators(rand: () => number) {
  const int = (n: number): number => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  /** A safe non-negative integer biased towards edges and every varint width. */
  const num = (limit = MAX): number => {
    const r = rand();
    if (r < 0.1) return 0;
    if (r < 0.2) return limit;
    if (r < 0.3) return Math.min(limit, pick([1, 127, 128, 16383, 16384, 2 ** 31, 2 ** 32, 2 ** 49]));
    return Math.min(limit, Math.floor(rand() * 2 ** int(54)));
  };
  const name = (alphabet: string, min: number, max: number, first = alphabet.slice(0, 36)): string => {
    const n = min + int(max - min + 1);
    let s = first[int(first.length)]!;
    for (let i = 1; i < n; i++) s += alphabet[int(alphabet.length)]!;
    return s;
  };
  const ranges = (): [number, number][] => {
    const count = rand() < 0.05 ? int(MAX_HAVE_RANGES + 1) : int(6);
    const out: [number, number][] = [];
    let next = rand() < 0.3 ? 0 : num(MAX);
    for (let i = 0; i < count && next <= MAX; i++) {
      const span = rand() < 0.5 ? int(4) : num(MAX - next);
      const to = next + Math.min(span, MAX - next);
      out.push([next, to]);
      if (to >= MAX - 1) break;
      next = to + 1 + Math.min(rand() < 0.5 ? int(3) : num(), MAX - to - 1);
    }
    return out;
  };
  const message = (): WireMessage => {
    switch (int(8)) {
      case 0:
        return {
          type: 'hello',
          version: WIRE_VERSION,
          peerId: name(PEER_ALPHABET, 16, 16, PEER_ALPHABET),
          channel: name(RENDITION_ALPHABET, 1, 64),
        };
      case 1:
        return {
          type: 'have',
          rendition: name(RENDITION_ALPHABET, 1, 32),
          reset: rand() < 0.5,
          ranges: ranges(),
        };
      case 2:
        return { type: 'lost', rendition: name(RENDITION_ALPHABET, 1, 32), ranges: ranges() };
      case 3:
        return {
          type: 'request',
          requestId: num(),
          rendition: name(RENDITION_ALPHABET, 1, 32),
          mediaSequence: num(),
          deadlineMs: num(),
        };
      case 4: {
        const totalBytes = 1 + num(MAX_SEGMENT_BYTES - 1);
        const length = 1 + int(Math.min(totalBytes, 40));
        const offset = int(totalBytes - length + 1);
        const bytes = Uint8Array.from({ length }, () => int(256));
        return { type: 'data', requestId: num(), offset, totalBytes, bytes };
      }
      case 5:
        return { type: 'cancel', requestId: num() };
      case 6:
        return { type: 'absent', requestId: num(), reason: pick(ABSENT_REASONS) };
      default:
        return { type: 'bye', code: pick(['bye', ...PEER_ERROR_CODES]) };
    }
  };
  return { int, message };
}

/** Either a message that re-encodes to exactly `bytes`, or a WireError; nothing else. */
function checkDecoder(bytes: Uint8Array): 'ok' | 'rejected' {
  let msg: WireMessage;
  try {
    msg = decodeMessage(bytes);
  } catch (err) {
    const expected =
      err instanceof WireError &&
      (err.code === 'peer-protocol-violation' || (err.code === 'peer-version-mismatch' && bytes[0] === 1));
    assert.ok(expected, `input ${toHex(bytes.subarray(0, 80))}: unexpected ${String(err)}`);
    return 'rejected';
  }
  const again = encodeMessage(msg);
  assert.equal(toHex(again), toHex(bytes), `accepted ${toHex(bytes.subarray(0, 80))} re-encodes differently`);
  return 'ok';
}

describe('fuzz', { timeout: 20_000 }, () => {
  test(`valid messages round-trip (seed ${SEED})`, () => {
    seeded((rand) => {
      const g = generators(rand);
      for (let i = 0; i < 5000; i++) {
        const msg = g.message();
        const bytes = encodeMessage(msg);
        assert.ok(bytes.length <= MAX_MESSAGE_BYTES);
        assert.deepEqual(decodeMessage(bytes), msg);
      }
    });
  });

  test(`20 000 random byte strings (seed ${SEED})`, () => {
    seeded((rand) => {
      const g = generators(rand);
      let accepted = 0;
      for (let i = 0; i < 20_000; i++) {
        const length = rand() < 0.9 ? g.int(24) : g.int(300);
        const bytes = Uint8Array.from({ length }, () => g.int(256));
        // Half of them start with a known type byte, to reach past the first check.
        if (length > 0 && rand() < 0.5) bytes[0] = 1 + g.int(8);
        if (length > 1 && bytes[0] === 1 && rand() < 0.5) bytes[1] = WIRE_VERSION;
        if (checkDecoder(bytes) === 'ok') accepted++;
      }
      assert.ok(accepted > 100, `only ${accepted} accepted: the fuzz does not reach the decoders`);
    });
  });

  test(`20 000 mutations of valid encodings (seed ${SEED})`, () => {
    seeded((rand) => {
      const g = generators(rand);
      const counts = { ok: 0, rejected: 0 };
      for (let i = 0; i < 20_000; i++) {
        const orig = encodeMessage(g.message());
        let bytes: Uint8Array;
        const pos = g.int(orig.length);
        switch (g.int(6)) {
          case 0: // replace a byte
            bytes = orig.slice();
            bytes[pos] = g.int(256);
            break;
          case 1: // flip a bit
            bytes = orig.slice();
            bytes[pos]! ^= 1 << g.int(8);
            break;
          case 2: // truncate
            bytes = orig.slice(0, g.int(orig.length));
            break;
          case 3: // extend
            bytes = bytesOf(
              orig,
              Array.from({ length: 1 + g.int(4) }, () => g.int(256)),
            );
            break;
          case 4: // insert a byte
            bytes = bytesOf(orig.subarray(0, pos), g.int(256), orig.subarray(pos));
            break;
          default: // delete a byte
            bytes = bytesOf(orig.subarray(0, pos), orig.subarray(pos + 1));
        }
        counts[checkDecoder(bytes)]++;
      }
      assert.ok(counts.ok > 1000 && counts.rejected > 1000, JSON.stringify(counts));
    });
  });
});

// ---------------------------------------------------------------------------------------------------
// HaveSet

describe('HaveSet', () => {
  test('appending in order keeps one range; a gap opens a new one; filling it merges', () => {
    const s = new HaveSet();
    assert.equal(s.size, 0);
    assert.equal(s.min(), undefined);
    assert.equal(s.max(), undefined);
    assert.equal(s.has(0), false);
    for (let i = 100; i < 110; i++) s.add(i);
    assert.deepEqual(s.ranges(), [[100, 109]]);
    s.add(112).add(113);
    assert.deepEqual(s.ranges(), [
      [100, 109],
      [112, 113],
    ]);
    s.add(111);
    assert.deepEqual(s.ranges(), [
      [100, 109],
      [111, 113],
    ]);
    s.add(110);
    assert.deepEqual(s.ranges(), [[100, 113]]);
    s.add(105).add(100).add(113);
    assert.deepEqual(s.ranges(), [[100, 113]]);
    assert.equal(s.size, 14);
    assert.equal(s.rangeCount, 1);
    assert.equal(s.min(), 100);
    assert.equal(s.max(), 113);
    s.add(99);
    assert.deepEqual(s.ranges(), [[99, 113]]);
    s.add(5);
    assert.deepEqual(s.ranges(), [
      [5, 5],
      [99, 113],
    ]);
    assert.equal(s.size, 16);
  });

  test('addRange merges adjacent and overlapping ranges, inserts in the middle', () => {
    const s = HaveSet.fromRanges([
      [10, 19],
      [30, 39],
      [50, 59],
    ]);
    s.addRange(20, 29); // adjacent on both sides
    assert.deepEqual(s.ranges(), [
      [10, 39],
      [50, 59],
    ]);
    s.addRange(42, 45); // between, touching nothing
    assert.deepEqual(s.ranges(), [
      [10, 39],
      [42, 45],
      [50, 59],
    ]);
    s.addRange(0, 3);
    assert.deepEqual(s.ranges(), [
      [0, 3],
      [10, 39],
      [42, 45],
      [50, 59],
    ]);
    s.addRange(35, 52); // spans several
    assert.deepEqual(s.ranges(), [
      [0, 3],
      [10, 59],
    ]);
    s.addRange(2, 70);
    assert.deepEqual(s.ranges(), [[0, 70]]);
    assert.equal(s.size, 71);
    s.addRange(0, 70);
    assert.equal(s.size, 71);
  });

  test('remove splits a range, trims edges, drops whole ranges', () => {
    const s = HaveSet.fromRanges([[0, 99]]);
    s.remove(40, 49);
    assert.deepEqual(s.ranges(), [
      [0, 39],
      [50, 99],
    ]);
    assert.equal(s.size, 90);
    assert.equal(s.has(40), false);
    assert.equal(s.has(39), true);
    assert.equal(s.has(50), true);
    s.remove(0, 0);
    assert.deepEqual(s.ranges(), [
      [1, 39],
      [50, 99],
    ]);
    s.remove(99, 1000);
    assert.deepEqual(s.ranges(), [
      [1, 39],
      [50, 98],
    ]);
    s.remove(30, 60);
    assert.deepEqual(s.ranges(), [
      [1, 29],
      [61, 98],
    ]);
    s.remove(40, 60); // nothing there
    assert.deepEqual(s.ranges(), [
      [1, 29],
      [61, 98],
    ]);
    s.remove(0, 29); // evict the oldest range
    assert.deepEqual(s.ranges(), [[61, 98]]);
    s.remove(0, MAX);
    assert.deepEqual(s.ranges(), []);
    assert.equal(s.size, 0);
    assert.equal(s.max(), undefined);
  });

  test('has() on a large set', () => {
    const s = new HaveSet();
    const n = 200_000;
    for (let i = 0; i < n; i++) s.addRange(i * 4, i * 4 + 1); // {0,1, 4,5, 8,9, …}
    assert.equal(s.rangeCount, n);
    assert.equal(s.size, 2 * n);
    const start = performance.now();
    for (let x = 0; x < n * 4; x++) {
      if (s.has(x) !== x % 4 < 2) assert.fail(`has(${x})`);
    }
    assert.ok(performance.now() - start < 2000);
    assert.equal(s.has(n * 4), false);
    assert.equal(s.has(MAX), false);
    assert.equal(s.min(), 0);
    assert.equal(s.max(), n * 4 - 3);
  });

  test('fromRanges merges unsorted, overlapping, adjacent input; round-trips with have/lost', () => {
    const s = HaveSet.fromRanges([
      [20, 25],
      [0, 4],
      [5, 9],
      [3, 7],
      [26, 26],
      [MAX, MAX],
      [30, 30],
    ]);
    assert.deepEqual(s.ranges(), [
      [0, 9],
      [20, 26],
      [30, 30],
      [MAX, MAX],
    ]);
    assert.equal(s.size, 10 + 7 + 1 + 1);
    assert.equal(s.has(MAX), true);
    assert.equal(s.max(), MAX);
    const have = decodeMessage(
      encodeMessage({ type: 'have', rendition: 'hd', reset: true, ranges: s.ranges() }),
    );
    assert.equal(have.type, 'have');
    if (have.type !== 'have') return;
    assert.deepEqual(HaveSet.fromRanges(have.ranges).ranges(), s.ranges());
    // ranges() is a copy.
    s.ranges().pop();
    assert.equal(s.rangeCount, 4);
    assert.deepEqual(HaveSet.fromRanges([]).ranges(), []);
    s.clear();
    assert.equal(s.size, 0);
  });

  test('rejects invalid arguments with TypeError', () => {
    const s = new HaveSet();
    assert.throws(() => s.add(-1), TypeError);
    assert.throws(() => s.add(1.5), TypeError);
    assert.throws(() => s.add(MAX + 1), TypeError);
    assert.throws(() => s.addRange(5, 4), TypeError);
    assert.throws(() => s.remove(5, 4), TypeError);
    assert.throws(() => HaveSet.fromRanges([[NaN, 1]]), TypeError);
    assert.equal(s.size, 0);
  });

  test(`matches a plain Set under random operations (seed ${SEED})`, () => {
    seeded((rand) => {
      const int = (n: number): number => Math.floor(rand() * n);
      for (let round = 0; round < 50; round++) {
        const s = new HaveSet();
        const model = new Set<number>();
        const U = 20 + int(200);
        for (let op = 0; op < 300; op++) {
          const a = int(U);
          const b = Math.min(U, a + (rand() < 0.5 ? int(3) : int(40)));
          const kind = int(10);
          if (kind < 3) {
            s.add(a);
            model.add(a);
          } else if (kind < 6) {
            s.addRange(a, b);
            for (let x = a; x <= b; x++) model.add(x);
          } else if (kind < 9) {
            s.remove(a, b);
            for (let x = a; x <= b; x++) model.delete(x);
          } else {
            const snapshot = s.ranges();
            assert.deepEqual(HaveSet.fromRanges(snapshot.slice().reverse()).ranges(), snapshot);
          }
          // Expected merged ranges.
          const expected: [number, number][] = [];
          for (const x of [...model].sort((p, q) => p - q)) {
            const last = expected[expected.length - 1];
            if (last && last[1] + 1 === x) last[1] = x;
            else expected.push([x, x]);
          }
          assert.deepEqual(s.ranges(), expected, `round ${round} op ${op}`);
          assert.equal(s.size, model.size);
          assert.equal(s.min(), expected[0]?.[0]);
          assert.equal(s.max(), expected[expected.length - 1]?.[1]);
          const probe = int(U + 2);
          assert.equal(s.has(probe), model.has(probe));
        }
      }
    });
  });
});
