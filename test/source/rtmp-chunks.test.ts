/**
 * The RTMP chunk stream reader on its own: however the bytes are split, the same messages come out;
 * every header form (full, same stream, timestamp only, continuation; 1-, 2- and 3-byte basic headers;
 * extended timestamps) is reassembled; a chunk size, a message or chunk streams beyond the limits are
 * refused with the limit error.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  ABORT,
  AUDIO,
  ChunkReader,
  COMMAND_AMF0,
  encodeChunks,
  RtmpLimitError,
  SET_CHUNK_SIZE,
  VIDEO,
  type RtmpMessage,
} from '../../source/rtmp/chunks.ts';
import { DEFAULT_RTMP, type RtmpLimits } from '../../source/rtmp/options.ts';

const LIMITS: RtmpLimits = DEFAULT_RTMP.pendingLimits;

/** The basic header: fmt and chunk stream id in 1, 2 or 3 bytes. */
function basicHeader(fmt: number, csid: number): Buffer {
  if (csid >= 2 && csid <= 63) return Buffer.from([(fmt << 6) | csid]);
  if (csid >= 64 && csid <= 319) return Buffer.from([fmt << 6, csid - 64]);
  return Buffer.from([(fmt << 6) | 1, (csid - 64) & 0xff, (csid - 64) >> 8]);
}

/** One message as chunks, with a header of the given form for its first chunk. */
function chunks(
  o: { fmt: 0 | 1 | 2 | 3; csid: number; type: number; streamId?: number; ts: number },
  payload: Buffer,
  chunkSize: number,
): Buffer {
  const extended = o.ts >= 0xffffff;
  const tsField = extended ? 0xffffff : o.ts;
  const ext = () => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(o.ts);
    return b;
  };
  const parts: Buffer[] = [basicHeader(o.fmt, o.csid)];
  if (o.fmt <= 2) {
    const h = Buffer.alloc([11, 7, 3][o.fmt]!);
    h.writeUIntBE(tsField, 0, 3);
    if (o.fmt <= 1) {
      h.writeUIntBE(payload.length, 3, 3);
      h[6] = o.type;
    }
    if (o.fmt === 0) h.writeUInt32LE(o.streamId ?? 0, 7);
    parts.push(h);
  }
  if (extended) parts.push(ext());
  for (let off = 0; off < payload.length; off += chunkSize) {
    if (off > 0) {
      parts.push(basicHeader(3, o.csid));
      if (extended) parts.push(ext());
    }
    parts.push(payload.subarray(off, off + chunkSize));
  }
  return Buffer.concat(parts);
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

function read(pieces: Buffer[], limits = LIMITS): RtmpMessage[] {
  const got: RtmpMessage[] = [];
  // Copies: the reader must not keep views of the bytes it was given (they are reused below).
  const reader = new ChunkReader(limits, (m) => got.push({ ...m, payload: Buffer.from(m.payload) }));
  for (const p of pieces) {
    const scratch = Buffer.from(p);
    reader.push(scratch);
    scratch.fill(0xee);
  }
  assert.equal(reader.bufferedBytes, 0, 'nothing held once every message is complete');
  return got;
}

/** A stream exercising every header form; returns its bytes and the messages it carries. */
function sample(): { bytes: Buffer; messages: RtmpMessage[] } {
  const a = crypto.randomBytes(300);
  const b = crypto.randomBytes(200);
  const c = crypto.randomBytes(200);
  const d = crypto.randomBytes(200);
  const e = crypto.randomBytes(5000);
  const f = crypto.randomBytes(70);
  const g = crypto.randomBytes(10);
  const bytes = Buffer.concat([
    chunks({ fmt: 0, csid: 4, type: VIDEO, streamId: 1, ts: 1000 }, a, 128), // full header, 3 chunks
    chunks({ fmt: 1, csid: 4, type: AUDIO, ts: 40 }, b, 128), // same stream id, new length and type
    chunks({ fmt: 2, csid: 4, type: AUDIO, ts: 20 }, c, 128), // timestamp delta only
    chunks({ fmt: 3, csid: 4, type: AUDIO, ts: 0 }, d, 128), // repeats the last delta
    chunks({ fmt: 0, csid: 2, type: SET_CHUNK_SIZE, ts: 0 }, u32(4096), 128), // handled by the reader
    chunks({ fmt: 0, csid: 300, type: VIDEO, streamId: 1, ts: 0x1234567 }, e, 4096), // 3-byte id, extended
    chunks({ fmt: 0, csid: 70, type: COMMAND_AMF0, ts: 5 }, f, 4096), // 2-byte basic header
    chunks({ fmt: 0, csid: 5, type: AUDIO, streamId: 1, ts: 7 }, Buffer.alloc(0), 4096), // empty message
    chunks({ fmt: 0, csid: 5, type: AUDIO, streamId: 1, ts: 8 }, g, 4096),
  ]);
  const messages: RtmpMessage[] = [
    { type: VIDEO, streamId: 1, timestamp: 1000, payload: a },
    { type: AUDIO, streamId: 1, timestamp: 1040, payload: b },
    { type: AUDIO, streamId: 1, timestamp: 1060, payload: c },
    { type: AUDIO, streamId: 1, timestamp: 1080, payload: d },
    { type: VIDEO, streamId: 1, timestamp: 0x1234567, payload: e },
    { type: COMMAND_AMF0, streamId: 0, timestamp: 5, payload: f },
    { type: AUDIO, streamId: 1, timestamp: 7, payload: Buffer.alloc(0) },
    { type: AUDIO, streamId: 1, timestamp: 8, payload: g },
  ];
  return { bytes, messages };
}

describe('RTMP chunk reader', () => {
  test('bytes split at every offset (and byte by byte) yield the same messages', () => {
    const { bytes, messages } = sample();
    assert.deepEqual(read([bytes]), messages, 'in one piece');
    for (let cut = 1; cut < bytes.length; cut++)
      assert.deepEqual(read([bytes.subarray(0, cut), bytes.subarray(cut)]), messages, `split at ${cut}`);
    const bytewise = [...bytes].map((x) => Buffer.from([x]));
    assert.deepEqual(read(bytewise), messages, 'one byte at a time');
  });

  test('encodeChunks round-trips through the reader at any chunk size', () => {
    for (const size of [1, 128, 4096]) {
      const payload = crypto.randomBytes(1000);
      const bytes = Buffer.concat([
        encodeChunks(2, SET_CHUNK_SIZE, 0, u32(size), 128),
        encodeChunks(3, COMMAND_AMF0, 1, payload, size),
      ]);
      assert.deepEqual(read([bytes]), [{ type: COMMAND_AMF0, streamId: 1, timestamp: 0, payload }]);
    }
  });

  test('Abort drops the unfinished message of a chunk stream', () => {
    const big = chunks({ fmt: 0, csid: 6, type: VIDEO, ts: 0 }, crypto.randomBytes(1000), 128);
    const got: RtmpMessage[] = [];
    const reader = new ChunkReader(LIMITS, (m) => got.push(m));
    reader.push(big.subarray(0, 12 + 128)); // one chunk of eight
    assert.ok(reader.bufferedBytes > 0);
    reader.push(chunks({ fmt: 0, csid: 2, type: ABORT, ts: 0 }, u32(6), 128));
    assert.equal(reader.bufferedBytes, 0);
    const next = crypto.randomBytes(50);
    reader.push(chunks({ fmt: 0, csid: 6, type: AUDIO, ts: 3 }, next, 128));
    assert.deepEqual(got, [{ type: AUDIO, streamId: 0, timestamp: 3, payload: next }]);
  });

  test('a chunk size beyond the limit is refused with the limit error', () => {
    const reader = new ChunkReader(LIMITS, () => {}, ' before publish');
    const tooBig = chunks(
      { fmt: 0, csid: 2, type: SET_CHUNK_SIZE, ts: 0 },
      u32(LIMITS.maxChunkSizeBytes + 1),
      128,
    );
    assert.throws(
      () => reader.push(tooBig),
      (err: Error) => {
        assert.ok(err instanceof RtmpLimitError);
        assert.match(
          err.message,
          new RegExp(
            `chunk size ${LIMITS.maxChunkSizeBytes + 1} is larger than ${LIMITS.maxChunkSizeBytes} before publish`,
          ),
        );
        return true;
      },
    );
    // At the limit it is taken.
    const atLimit = new ChunkReader(LIMITS, () => {});
    atLimit.push(
      chunks({ fmt: 0, csid: 2, type: SET_CHUNK_SIZE, ts: 0 }, u32(LIMITS.maxChunkSizeBytes), 128),
    );
    assert.equal(atLimit.chunkSize, LIMITS.maxChunkSizeBytes);
  });

  test('more chunk streams than allowed are refused with the limit error', () => {
    const reader = new ChunkReader(LIMITS, () => {});
    const unfinished = (csid: number) =>
      chunks({ fmt: 0, csid, type: VIDEO, ts: 0 }, Buffer.alloc(1000), 128).subarray(0, 12 + 128);
    for (let i = 0; i < LIMITS.maxChunkStreams; i++) reader.push(unfinished(3 + i));
    assert.equal(reader.chunkStreams, LIMITS.maxChunkStreams);
    assert.throws(
      () => reader.push(unfinished(3 + LIMITS.maxChunkStreams)),
      (err: Error) => {
        assert.ok(err instanceof RtmpLimitError);
        assert.match(err.message, new RegExp(`more than ${LIMITS.maxChunkStreams} chunk streams`));
        return true;
      },
    );
  });

  test('a message larger than allowed, or unfinished messages beyond the budget, are refused', () => {
    const reader = new ChunkReader(LIMITS, () => {}, ' before publish');
    const header = chunks(
      { fmt: 0, csid: 3, type: VIDEO, ts: 0 },
      Buffer.alloc(LIMITS.maxMessageBytes + 1),
      128,
    ).subarray(0, 12);
    assert.throws(() => reader.push(header), RtmpLimitError);

    // Two messages of maxMessageBytes each, filled halfway... then more: the budget holds.
    const tight: RtmpLimits = { ...LIMITS, maxBufferedBytes: LIMITS.maxMessageBytes };
    const r2 = new ChunkReader(tight, () => {});
    const half = (csid: number) =>
      chunks({ fmt: 0, csid, type: VIDEO, ts: 0 }, Buffer.alloc(LIMITS.maxMessageBytes), 128).subarray(
        0,
        12 + 129 * 300,
      );
    r2.push(half(3));
    assert.ok(r2.bufferedBytes <= tight.maxBufferedBytes);
    assert.throws(() => r2.push(half(4)), /unfinished messages would hold \d+ bytes \(budget 65536\)/);
  });

  test('malformed input throws a plain error (not a limit error)', () => {
    const reader = new ChunkReader(LIMITS, () => {});
    // A stream's first chunk must carry a full header.
    assert.throws(
      () => reader.push(chunks({ fmt: 1, csid: 3, type: VIDEO, ts: 0 }, Buffer.alloc(10), 128)),
      (err: Error) => !(err instanceof RtmpLimitError) && /without a full header/.test(err.message),
    );
  });

  test('release drops what is held and stops parsing, even from inside a message handler', () => {
    const got: RtmpMessage[] = [];
    const reader: ChunkReader = new ChunkReader(LIMITS, (m) => {
      got.push(m);
      reader.release();
    });
    const two = Buffer.concat([
      chunks({ fmt: 0, csid: 3, type: AUDIO, ts: 1 }, Buffer.alloc(10, 1), 128),
      chunks({ fmt: 0, csid: 3, type: AUDIO, ts: 2 }, Buffer.alloc(10, 2), 128),
    ]);
    reader.push(two);
    assert.equal(got.length, 1, 'nothing is parsed after release');
    assert.equal(reader.bufferedBytes, 0);
  });
});
