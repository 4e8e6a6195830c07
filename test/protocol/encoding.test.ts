import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  assertSegmentId,
  fromBase64Url,
  fromHex,
  isChannelId,
  isRenditionName,
  isSequenceNumber,
  segmentKey,
  toBase64Url,
  toHex,
  TypedEmitter,
  utf8,
  type ListenerErrorInfo,
  type SegmentId,
} from '../../protocol/index.ts';
import { waitFor } from '../helpers/wait-for.ts';

const randomBytes = (n: number): Uint8Array => new Uint8Array(crypto.randomBytes(n));

describe('hex', () => {
  test('round-trips random bytes of every length 0..70 and matches Node', () => {
    for (let n = 0; n <= 70; n++) {
      const bytes = randomBytes(n);
      const hex = toHex(bytes);
      assert.equal(hex, Buffer.from(bytes).toString('hex'), `length ${n}`);
      assert.equal(hex.length, n * 2);
      assert.match(hex, /^[0-9a-f]*$/);
      assert.deepEqual(fromHex(hex), bytes, `length ${n}`);
    }
  });

  test('encodes every byte value', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const hex = toHex(all);
    assert.equal(hex.slice(0, 6), '000102');
    assert.equal(hex.slice(-4), 'feff');
    assert.deepEqual(fromHex(hex), all);
  });

  test('rejects odd lengths, non-hex characters and uppercase (canonical lowercase only)', () => {
    for (const bad of ['0', 'abc', '0g', 'zz', '12 4', ' 1234', '1234\n', '0x12', '-1', 'AB', 'aB', 'é1'])
      assert.equal(fromHex(bad), undefined, JSON.stringify(bad));
  });

  test('empty string decodes to zero bytes', () => {
    const out = fromHex('');
    assert.ok(out instanceof Uint8Array);
    assert.equal(out.length, 0);
  });
});

describe('base64url', () => {
  test('round-trips random bytes of every length 0..70 and matches Node (no padding)', () => {
    for (let n = 0; n <= 70; n++) {
      const bytes = randomBytes(n);
      const text = toBase64Url(bytes);
      assert.equal(text, Buffer.from(bytes).toString('base64url'), `length ${n}`);
      assert.equal(text.length, Math.ceil((n * 4) / 3));
      assert.doesNotMatch(text, /[=+/]/);
      assert.deepEqual(fromBase64Url(text), bytes, `length ${n}`);
    }
  });

  test('uses the URL-safe alphabet for 62 and 63', () => {
    assert.equal(toBase64Url(new Uint8Array([0xfb, 0xff])), '-_8');
    assert.deepEqual(fromBase64Url('-_8'), new Uint8Array([0xfb, 0xff]));
  });

  test('rejects characters outside the base64url alphabet', () => {
    for (const bad of ['AA==', 'AB+C', 'AB/C', 'AB C', 'AB.C', 'ABÇD', 'AAAA\n', '%41'])
      assert.equal(fromBase64Url(bad), undefined, JSON.stringify(bad));
  });

  test('rejects impossible lengths (4k+1 characters)', () => {
    for (const bad of ['A', 'AAAAA', 'AAAAAAAAA']) assert.equal(fromBase64Url(bad), undefined, bad);
  });

  test('rejects non-canonical encodings (stray trailing bits)', () => {
    // One byte 0x00 is "AA"; "AB" sets a low bit that carries no data.
    assert.deepEqual(fromBase64Url('AA'), new Uint8Array([0]));
    assert.equal(fromBase64Url('AB'), undefined);
    assert.equal(fromBase64Url('AP'), undefined);
    // Two bytes: "AAA" is canonical, "AAB" is not.
    assert.deepEqual(fromBase64Url('AAA'), new Uint8Array([0, 0]));
    assert.equal(fromBase64Url('AAB'), undefined);
    assert.equal(fromBase64Url('AAD'), undefined);
    // Random bytes: flipping a padding bit of the last character is always rejected.
    for (const n of [1, 2, 4, 5, 31, 32, 64]) {
      const text = toBase64Url(randomBytes(n));
      const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const last = B64.indexOf(text.at(-1)!);
      const tampered = text.slice(0, -1) + B64[last ^ 1]!;
      assert.equal(fromBase64Url(tampered), undefined, `${n} bytes: ${tampered}`);
    }
  });

  test('utf8 round trip', () => {
    const s = 'PeerTV — 📺 ok';
    assert.equal(utf8.decode(utf8.encode(s)), s);
    assert.equal(utf8.encode('é').length, 2);
  });
});

describe('segment ids', () => {
  test('isChannelId accepts the documented alphabet and 1..64 characters', () => {
    for (const ok of ['a', '0', 'test', 'my-channel_2', 'a'.repeat(64), '9lives'])
      assert.equal(isChannelId(ok), true, ok);
    for (const bad of [
      '',
      'a'.repeat(65),
      '-a',
      '_a',
      'A',
      'Abc',
      'a b',
      'a/b',
      'a.b',
      '..',
      'a\n',
      '\na',
      'ä',
      undefined,
      null,
      42,
      ['a'],
      { toString: () => 'a' },
    ])
      assert.equal(isChannelId(bad), false, JSON.stringify(bad));
  });

  test('isRenditionName accepts 1..32 characters only', () => {
    for (const ok of ['720p', '0', 'a'.repeat(32), 'hd_60-fps']) assert.equal(isRenditionName(ok), true, ok);
    for (const bad of ['', 'a'.repeat(33), '-720p', '720P', '720p.m3u8', '../x', '720p\n', 720, null])
      assert.equal(isRenditionName(bad), false, JSON.stringify(bad));
  });

  test('isSequenceNumber: non-negative safe integers only', () => {
    for (const ok of [0, 1, 2 ** 40, Number.MAX_SAFE_INTEGER]) assert.equal(isSequenceNumber(ok), true);
    for (const bad of [-1, 1.5, NaN, Infinity, Number.MAX_SAFE_INTEGER + 1, '1', -0.5, null])
      assert.equal(isSequenceNumber(bad), false, String(bad));
  });

  test('segmentKey joins channel/rendition/sequence', () => {
    assert.equal(segmentKey({ channel: 'c', rendition: '720p', mediaSequence: 0 }), 'c/720p/0');
    assert.equal(
      segmentKey({ channel: 'news', rendition: '90p', mediaSequence: Number.MAX_SAFE_INTEGER }),
      `news/90p/${Number.MAX_SAFE_INTEGER}`,
    );
    // Different ids give different keys.
    assert.notEqual(
      segmentKey({ channel: 'a', rendition: '1', mediaSequence: 11 }),
      segmentKey({ channel: 'a', rendition: '11', mediaSequence: 1 }),
    );
  });

  test('assertSegmentId accepts a valid id and names the first invalid field', () => {
    const good: SegmentId = { channel: 'c', rendition: 'r', mediaSequence: 0, discontinuitySequence: 0 };
    assert.doesNotThrow(() => assertSegmentId(good));
    assert.doesNotThrow(() =>
      assertSegmentId({ ...good, mediaSequence: Number.MAX_SAFE_INTEGER, discontinuitySequence: 7 }),
    );
    const cases: [Partial<Record<keyof SegmentId, unknown>>, RegExp][] = [
      [{ channel: 'Bad' }, /channel/],
      [{ channel: '' }, /channel/],
      [{ rendition: '../x' }, /rendition/],
      [{ mediaSequence: -1 }, /media sequence/],
      [{ mediaSequence: 1.5 }, /media sequence/],
      [{ mediaSequence: Number.MAX_SAFE_INTEGER + 1 }, /media sequence/],
      [{ discontinuitySequence: NaN }, /discontinuity/],
      [{ discontinuitySequence: '0' }, /discontinuity/],
      // Several invalid fields: the first one (channel) is named.
      [{ channel: 'X', mediaSequence: -1 }, /channel/],
    ];
    for (const [patch, message] of cases)
      assert.throws(
        () => assertSegmentId({ ...good, ...patch } as SegmentId),
        (err: unknown) => err instanceof TypeError && message.test(err.message),
        JSON.stringify(patch),
      );
  });
});

type Events = {
  [event: string]: (...args: never[]) => void;
  data: (n: number, label: string) => void;
  done: () => void;
};

/** Exposes the protected `emit` for tests. */
class Emitter extends TypedEmitter<Events> {
  fire<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void {
    this.emit(event, ...args);
  }
}

describe('TypedEmitter', () => {
  test('on delivers every emission with its arguments, in registration order', () => {
    const e = new Emitter();
    const got: string[] = [];
    e.on('data', (n, label) => got.push(`a:${n}:${label}`));
    e.on('data', (n, label) => got.push(`b:${n}:${label}`));
    e.fire('data', 1, 'x');
    e.fire('data', 2, 'y');
    e.fire('done');
    assert.deepEqual(got, ['a:1:x', 'b:1:x', 'a:2:y', 'b:2:y']);
    assert.equal(e.listenerCount('data'), 2);
    assert.equal(e.listenerCount('done'), 0);
  });

  test('on/once/off return the emitter (chaining)', () => {
    const e = new Emitter();
    const f = (): void => {};
    assert.equal(e.on('done', f), e);
    assert.equal(e.once('done', f), e);
    assert.equal(e.off('done', f), e);
  });

  test('once fires exactly once and then unregisters itself', () => {
    const e = new Emitter();
    const got: number[] = [];
    e.once('data', (n) => got.push(n));
    assert.equal(e.listenerCount('data'), 1);
    e.fire('data', 1, '');
    e.fire('data', 2, '');
    assert.deepEqual(got, [1]);
    assert.equal(e.listenerCount('data'), 0);
  });

  test('off removes a listener; removing an unknown one is harmless', () => {
    const e = new Emitter();
    const got: number[] = [];
    const f = (n: number): void => void got.push(n);
    e.on('data', f);
    e.fire('data', 1, '');
    e.off('data', f);
    e.fire('data', 2, '');
    e.off('data', f);
    e.off('done', () => {});
    assert.deepEqual(got, [1]);
    assert.equal(e.listenerCount('data'), 0);
  });

  test('off removes a listener that was registered with once', () => {
    const e = new Emitter();
    let calls = 0;
    const f = (): void => void calls++;
    e.once('done', f);
    e.off('done', f);
    e.fire('done');
    assert.equal(calls, 0);
    assert.equal(e.listenerCount('done'), 0);
  });

  test('removeAllListeners clears every event', () => {
    const e = new Emitter();
    let calls = 0;
    e.on('data', () => void calls++);
    e.on('done', () => void calls++);
    e.removeAllListeners();
    e.fire('data', 1, '');
    e.fire('done');
    assert.equal(calls, 0);
    assert.equal(e.listenerCount('data') + e.listenerCount('done'), 0);
  });

  test('a throwing listener does not stop the others and is reported via onListenerError', () => {
    const e = new Emitter();
    const reported: ListenerErrorInfo[] = [];
    e.onListenerError = (info) => reported.push(info);
    const boom = new Error('boom');
    const got: string[] = [];
    e.on('data', () => got.push('first'));
    e.on('data', () => {
      throw boom;
    });
    e.on('data', () => got.push('third'));
    e.fire('data', 1, '');
    assert.deepEqual(got, ['first', 'third']);
    assert.equal(reported.length, 1);
    assert.equal(reported[0]!.event, 'data');
    assert.equal(reported[0]!.error, boom);
    // Still usable afterwards.
    e.fire('data', 2, '');
    assert.deepEqual(got, ['first', 'third', 'first', 'third']);
    assert.equal(reported.length, 2);
  });

  test('a throwing onListenerError does not break emission', () => {
    const e = new Emitter();
    e.onListenerError = () => {
      throw new Error('reporter failed');
    };
    let after = 0;
    e.on('done', () => {
      throw new Error('listener failed');
    });
    e.on('done', () => void after++);
    assert.doesNotThrow(() => e.fire('done'));
    assert.equal(after, 1);
  });

  test('a throwing once listener is still removed', () => {
    const e = new Emitter();
    const reported: unknown[] = [];
    e.onListenerError = ({ error }) => reported.push(error);
    e.once('done', () => {
      throw new Error('x');
    });
    e.fire('done');
    e.fire('done');
    assert.equal(reported.length, 1);
    assert.equal(e.listenerCount('done'), 0);
  });

  test('waitFor resolves with the arguments of the first emission and unregisters', async () => {
    const e = new Emitter();
    const p = waitFor(e, 'data', 1000);
    assert.equal(e.listenerCount('data'), 1);
    setTimeout(() => {
      e.fire('data', 7, 'seven');
      e.fire('data', 8, 'eight');
    }, 5);
    assert.deepEqual(await p, [7, 'seven']);
    assert.equal(e.listenerCount('data'), 0);
  });

  test('waitFor rejects after its timeout and unregisters', async () => {
    const e = new Emitter();
    const started = Date.now();
    await assert.rejects(waitFor(e, 'done', 50), /timed out after 50 ms waiting for "done"/);
    assert.ok(Date.now() - started >= 45, 'did not wait for the timeout');
    assert.equal(e.listenerCount('done'), 0);
  });
});
