/** STUN codec: RFC 5769 test vectors, structural rules, round trips and a seeded fuzz test. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  STUN_ATTR,
  STUN_METHOD,
  encodeStunMessage,
  longTermKey,
  parseStunMessage,
  shortTermKey,
  verifyIntegrity,
  type StunMessage,
  type StunMessageInit,
} from '../../stun/index.ts';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// RFC 5769 §2.1: sample request (short-term credentials, ICE attributes).
const V21 = hex(`
  0001 0058 2112a442 b7e7a701 bc34d686 fa87dfae
  80220010 5354554e 20746573 7420636c 69656e74
  00240004 6e0001ff
  80290008 932ff9b1 51263b36
  00060009 6576746a 3a683676 59202020
  00080014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2
  80280004 e57a3bcf`);
// §2.2: sample IPv4 response.
const V22 = hex(`
  0101 003c 2112a442 b7e7a701 bc34d686 fa87dfae
  8022000b 74657374 20766563 746f7220
  00200008 0001a147 e112a643
  00080014 2b91f599 fd9e90c3 8c7489f9 2af9ba53 f06be7d7
  80280004 c07d4c96`);
// §2.3: sample IPv6 response.
const V23 = hex(`
  0101 0048 2112a442 b7e7a701 bc34d686 fa87dfae
  8022000b 74657374 20766563 746f7220
  00200014 0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9
  00080014 a382954e 4be67bf1 1784c97c 8292c275 bfe3ed41
  80280004 c8fb0b4c`);
// §2.4: sample request with long-term authentication (no FINGERPRINT).
const V24 = hex(`
  0001 0060 2112a442 78ad3433 c6ad72c0 29da412e
  00060012 e3839ee3 8388e383 aae38383 e382afe3 82b90000
  0015001c 662f2f34 39396b39 35346436 4f4c3334 6f4c3946 53547679 36347341
  0014000b 6578616d 706c652e 6f726700
  00080014 f6702465 6dd64a3e 02b8e071 2e85c9a2 8ca89666`);

const SHORT_KEY = shortTermKey('VOkJxbRl1RmTxUk/WvJxBt');
const LONG_KEY = longTermKey('マトリックス', 'example.org', 'TheMatrIX');
const TXID_1 = hex('b7e7a701 bc34d686 fa87dfae');

function parseOk(b: Uint8Array): StunMessage {
  const r = parseStunMessage(b);
  assert.ok(r.ok, `parse failed: ${r.ok ? '' : `${r.reason} (${r.detail})`}`);
  return r.message;
}

/** The fields a message is made of (what an encoder takes). */
function core(m: StunMessageInit): StunMessageInit {
  return { class: m.class, method: m.method, transactionId: m.transactionId, attributes: m.attributes };
}

describe('RFC 5769 test vectors', () => {
  test('2.1 sample request: every field, MESSAGE-INTEGRITY and FINGERPRINT', () => {
    const m = parseOk(V21);
    assert.equal(m.class, 'request');
    assert.equal(m.method, STUN_METHOD.binding);
    assert.deepEqual(m.transactionId, TXID_1);
    assert.deepEqual(m.attributes, [
      { kind: 'text', type: STUN_ATTR.SOFTWARE, text: 'STUN test client' },
      { kind: 'raw', type: STUN_ATTR.PRIORITY, value: hex('6e0001ff') },
      { kind: 'raw', type: STUN_ATTR.ICE_CONTROLLED, value: hex('932ff9b1 51263b36') },
      { kind: 'text', type: STUN_ATTR.USERNAME, text: 'evtj:h6vY' },
    ]);
    assert.deepEqual(m.messageIntegrity?.hmac, hex('9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2'));
    assert.equal(m.messageIntegritySha256, undefined);
    assert.equal(m.fingerprint, 0xe57a3bcf);
    assert.deepEqual(m.unknownRequired, []);
    assert.deepEqual(m.ignored, []);
    assert.ok(verifyIntegrity(m, SHORT_KEY));
    assert.ok(!verifyIntegrity(m, shortTermKey('VOkJxbRl1RmTxUk/WvJxBT')));
    assert.ok(!verifyIntegrity(m, SHORT_KEY, 'sha256'), 'no MESSAGE-INTEGRITY-SHA256 to verify');
  });

  test('2.2 IPv4 response: XOR-MAPPED-ADDRESS 192.0.2.1:32853', () => {
    const m = parseOk(V22);
    assert.equal(m.class, 'success');
    assert.equal(m.method, STUN_METHOD.binding);
    assert.deepEqual(m.transactionId, TXID_1);
    assert.deepEqual(m.attributes, [
      { kind: 'text', type: STUN_ATTR.SOFTWARE, text: 'test vector' },
      {
        kind: 'address',
        type: STUN_ATTR.XOR_MAPPED_ADDRESS,
        address: { family: 'IPv4', address: '192.0.2.1', port: 32853 },
      },
    ]);
    assert.equal(m.fingerprint, 0xc07d4c96);
    assert.ok(verifyIntegrity(m, SHORT_KEY));
  });

  test('2.3 IPv6 response: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853', () => {
    const m = parseOk(V23);
    assert.equal(m.class, 'success');
    assert.deepEqual(m.attributes[1], {
      kind: 'address',
      type: STUN_ATTR.XOR_MAPPED_ADDRESS,
      address: { family: 'IPv6', address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 },
    });
    assert.equal(m.fingerprint, 0xc8fb0b4c);
    assert.ok(verifyIntegrity(m, SHORT_KEY));
  });

  test('2.4 long-term authentication: USERNAME, NONCE, REALM, key = MD5(user:realm:pass)', () => {
    const m = parseOk(V24);
    assert.equal(m.class, 'request');
    assert.deepEqual(m.transactionId, hex('78ad3433 c6ad72c0 29da412e'));
    assert.deepEqual(m.attributes, [
      { kind: 'text', type: STUN_ATTR.USERNAME, text: 'マトリックス' },
      { kind: 'text', type: STUN_ATTR.NONCE, text: 'f//499k954d6OL34oL9FSTvy64sA' },
      { kind: 'text', type: STUN_ATTR.REALM, text: 'example.org' },
    ]);
    assert.equal(m.fingerprint, undefined);
    assert.equal(LONG_KEY.length, 16);
    assert.ok(verifyIntegrity(m, LONG_KEY));
    assert.ok(!verifyIntegrity(m, longTermKey('マトリックス', 'example.org', 'TheMatrix')));
  });

  test('every vector re-encodes byte for byte (0x20 padding as in the RFC for 2.1-2.3)', () => {
    for (const [v, key, pad, fp] of [
      [V21, SHORT_KEY, 0x20, true],
      [V22, SHORT_KEY, 0x20, true],
      [V23, SHORT_KEY, 0x20, true],
      [V24, LONG_KEY, 0, false],
    ] as const) {
      const again = encodeStunMessage(core(parseOk(v)), {
        integrityKey: key,
        fingerprint: fp,
        paddingByte: pad,
      });
      assert.equal(toHex(again), toHex(v));
    }
  });

  test('one flipped byte anywhere fails FINGERPRINT (or integrity, for 2.4)', () => {
    for (const v of [V21, V22, V23]) {
      for (let i = 20; i < v.length; i++) {
        const b = v.slice();
        b[i]! ^= 0x01;
        const r = parseStunMessage(b);
        // Flipping the FINGERPRINT's own type byte turns it into an unknown optional attribute:
        // the message then simply carries no fingerprint (a receiver that demands one rejects it).
        assert.ok(!r.ok || r.message.fingerprint === undefined, `byte ${i} flipped still parses`);
      }
      const b = v.slice();
      b[b.length - 1]! ^= 0x80;
      const r = parseStunMessage(b);
      assert.equal(r.ok ? 'ok' : r.reason, 'bad-fingerprint');
    }
    const b = V24.slice();
    b[40]! ^= 0x01; // a byte of the NONCE
    const m = parseOk(b);
    assert.ok(!verifyIntegrity(m, LONG_KEY));
  });
});

describe('structure rules', () => {
  const txid = hex('000102030405060708090a0b');
  const base: StunMessageInit = {
    class: 'request',
    method: STUN_METHOD.binding,
    transactionId: txid,
    attributes: [],
  };

  test('header checks', () => {
    const ok = encodeStunMessage(base);
    assert.equal(parseOk(ok).attributes.length, 0);
    const cases: [Uint8Array, string][] = [
      [ok.subarray(0, 19), 'too-short'],
      [Uint8Array.from([0x40, ...ok.subarray(1)]), 'not-stun'],
      [
        Uint8Array.from([...ok.subarray(0, 4), 0x21, 0x12, 0xa4, 0x43, ...ok.subarray(8)]),
        'bad-magic-cookie',
      ],
      [Uint8Array.from([...ok, 0, 0, 0, 0]), 'bad-length'],
      [Uint8Array.from([0, 1, 0, 2, ...ok.subarray(4), 0, 0]), 'bad-length'],
      [Uint8Array.from([0, 1, 0, 4, ...ok.subarray(4), 0, 6, 0, 1]), 'truncated-attribute'],
    ];
    for (const [b, reason] of cases) {
      const r = parseStunMessage(b);
      assert.equal(r.ok ? 'ok' : r.reason, reason, toHex(b));
    }
  });

  test('class and method bits round trip', () => {
    for (const cls of ['request', 'indication', 'success', 'error'] as const)
      for (const method of [0x001, 0x003, 0x00f, 0x010, 0x070, 0x080, 0xf80, 0xfff]) {
        const m = parseOk(encodeStunMessage({ ...base, class: cls, method }));
        assert.equal(m.class, cls);
        assert.equal(m.method, method);
      }
    assert.deepEqual([...encodeStunMessage({ ...base, class: 'success' }).subarray(0, 2)], [0x01, 0x01]);
    assert.deepEqual([...encodeStunMessage({ ...base, class: 'error' }).subarray(0, 2)], [0x01, 0x11]);
  });

  test('unknown comprehension-required attributes are listed, optional ones are not', () => {
    const m = parseOk(
      encodeStunMessage({
        ...base,
        attributes: [
          { kind: 'raw', type: 0x7777, value: hex('01') },
          { kind: 'raw', type: 0xc001, value: hex('02') },
          { kind: 'raw', type: 0x0002, value: new Uint8Array(0) },
        ],
      }),
    );
    assert.deepEqual(m.unknownRequired, [0x7777, 0x0002]);
  });

  test('FINGERPRINT must be last; attributes after MESSAGE-INTEGRITY are ignored', () => {
    const withFp = encodeStunMessage(base, { fingerprint: true });
    const after = Uint8Array.from([...withFp, 0x80, 0x22, 0, 0]);
    new DataView(after.buffer).setUint16(2, after.length - 20);
    const r = parseStunMessage(after);
    assert.equal(r.ok ? 'ok' : r.reason, 'fingerprint-not-last');

    const key = shortTermKey('pw');
    const mi = encodeStunMessage(
      { ...base, attributes: [{ kind: 'text', type: STUN_ATTR.USERNAME, text: 'u' }] },
      { integrityKey: key },
    );
    const trailing = Uint8Array.from([...mi, 0x77, 0x77, 0, 0, 0x80, 0x22, 0, 1, 0x41, 0, 0, 0]);
    new DataView(trailing.buffer).setUint16(2, trailing.length - 20);
    const m = parseOk(trailing);
    assert.deepEqual(m.ignored, [0x7777, 0x8022]);
    assert.deepEqual(m.unknownRequired, [], 'ignored attributes are not comprehension-checked');
    assert.equal(m.attributes.length, 1);
    assert.ok(verifyIntegrity(m, key), 'integrity covers only what precedes it');
  });

  test('MESSAGE-INTEGRITY-SHA256 and bad integrity lengths', () => {
    const key = shortTermKey('secret');
    const b = encodeStunMessage(base, { integrityKey: key, integrity: 'sha256', fingerprint: true });
    const m = parseOk(b);
    assert.equal(m.messageIntegritySha256?.hmac.length, 32);
    assert.ok(verifyIntegrity(m, key));
    assert.ok(!verifyIntegrity(m, shortTermKey('Secret')));
    const bad = Uint8Array.from([0, 1, 0, 8, ...b.subarray(4, 20), 0, 8, 0, 4, 1, 2, 3, 4]);
    const r = parseStunMessage(bad);
    assert.equal(r.ok ? 'ok' : r.reason, 'bad-integrity-length');
  });

  test('decoded attributes round trip (addresses, error code, unknown attributes, change request)', () => {
    const msg: StunMessageInit = {
      class: 'error',
      method: STUN_METHOD.binding,
      transactionId: txid,
      attributes: [
        { kind: 'error-code', type: STUN_ATTR.ERROR_CODE, code: 420, reason: 'Unknown Attribute' },
        { kind: 'unknown-attributes', type: STUN_ATTR.UNKNOWN_ATTRIBUTES, types: [0x7777, 0x0002, 0x1234] },
        {
          kind: 'address',
          type: STUN_ATTR.MAPPED_ADDRESS,
          address: { family: 'IPv4', address: '10.1.2.3', port: 1 },
        },
        {
          kind: 'address',
          type: STUN_ATTR.XOR_MAPPED_ADDRESS,
          address: { family: 'IPv6', address: '::1', port: 65535 },
        },
        {
          kind: 'address',
          type: STUN_ATTR.RESPONSE_ORIGIN,
          address: { family: 'IPv6', address: 'fe80::1:0:0:2', port: 3478 },
        },
        {
          kind: 'address',
          type: STUN_ATTR.OTHER_ADDRESS,
          address: { family: 'IPv4', address: '192.0.2.9', port: 3479 },
        },
        { kind: 'change-request', type: STUN_ATTR.CHANGE_REQUEST, changeIp: true, changePort: false },
        { kind: 'text', type: STUN_ATTR.REALM, text: '\ufeffrealm with BOM' },
        { kind: 'raw', type: STUN_ATTR.USE_CANDIDATE, value: new Uint8Array(0) },
        { kind: 'raw', type: STUN_ATTR.ICE_CONTROLLING, value: hex('0102030405060708') },
      ],
    };
    const m = parseOk(encodeStunMessage(msg, { fingerprint: true }));
    assert.deepEqual(core(m), msg);
    assert.throws(
      () =>
        encodeStunMessage({
          ...base,
          attributes: [{ kind: 'raw', type: STUN_ATTR.FINGERPRINT, value: new Uint8Array(4) }],
        }),
      TypeError,
    );
    assert.throws(() => encodeStunMessage({ ...base, transactionId: new Uint8Array(11) }), TypeError);
  });

  test('malformed known attributes are rejected', () => {
    for (const attr of [
      '00200005 00010000 01000000',
      '00090004 00000763',
      '000a0003 00010200',
      '00060002 c3280000',
      '00240003 01020300',
    ]) {
      const body = hex(attr);
      const b = Uint8Array.from([0, 1, 0, body.length, ...txidHeader(txid), ...body]);
      const r = parseStunMessage(b);
      assert.equal(r.ok ? 'ok' : r.reason, 'bad-attribute', attr);
    }
  });
});

function txidHeader(txid: Uint8Array): number[] {
  return [0x21, 0x12, 0xa4, 0x42, ...txid];
}

// ---------------------------------------------------------------- fuzz

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Re-encodes an accepted message and checks the result parses to the same thing. */
function checkConsistent(m: StunMessage): void {
  const again = encodeStunMessage(core(m), { fingerprint: m.fingerprint !== undefined });
  const r = parseStunMessage(again);
  assert.ok(r.ok, r.ok ? '' : `re-encoded message rejected: ${r.reason} ${r.detail}`);
  assert.deepEqual(core(r.message), core(m));
  assert.deepEqual(r.message.unknownRequired, m.unknownRequired);
  assert.deepEqual(r.message.ignored, []);
  if (m.messageIntegrity || m.messageIntegritySha256) {
    const key = shortTermKey('k');
    const signed = parseStunMessage(encodeStunMessage(core(m), { integrityKey: key, fingerprint: true }));
    assert.ok(signed.ok && verifyIntegrity(signed.message, key));
  }
}

test('fuzz: 20 000 random and 20 000 mutated datagrams never throw; accepted ones re-encode consistently', () => {
  const seed = Number(process.env.STUN_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32));
  const rnd = mulberry32(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const vectors = [V21, V22, V23, V24];
  const stats = { accepted: 0, rejected: 0 };
  const attrTypes = [...Object.values(STUN_ATTR), 0x7777, 0xc0de, 0x0002];
  const run = (b: Uint8Array, label: string) => {
    let r;
    try {
      // Every other input as a Buffer (what dgram and net deliver; Buffer#slice is a view, not a copy).
      r = parseStunMessage(stats.accepted % 2 ? Buffer.from(b) : b);
      if (r.ok) assert.deepEqual(r.message.raw, Uint8Array.from(b), 'parsing must not alter the bytes');
    } catch (err) {
      assert.fail(`parser threw (seed ${seed}, ${label}, ${toHex(b)}): ${(err as Error).stack}`);
    }
    if (!r.ok) return void stats.rejected++;
    stats.accepted++;
    try {
      checkConsistent(r.message);
    } catch (err) {
      assert.fail(`inconsistent (seed ${seed}, ${label}, ${toHex(b)}): ${(err as Error).message}`);
    }
  };
  for (let i = 0; i < 20_000; i++) {
    // Half plain noise, half a valid header followed by random TLVs (so the parser gets past the header).
    let b: Uint8Array;
    if (i % 2 === 0) b = Uint8Array.from({ length: int(120) }, () => int(256));
    else {
      const body: number[] = [];
      for (let n = int(6); n > 0; n--) {
        const len = int(4) === 0 ? int(40) : [0, 4, 8, 12, 20][int(5)]!;
        const t = attrTypes[int(attrTypes.length)]!;
        body.push(
          t >> 8,
          t & 0xff,
          len >> 8,
          len & 0xff,
          ...Array.from({ length: Math.ceil(len / 4) * 4 }, () => int(256)),
        );
      }
      const m = int(3) === 0 ? int(0x3fff) : [0x0001, 0x0101, 0x0111, 0x0011][int(4)]!;
      b = Uint8Array.from([
        m >> 8,
        m & 0xff,
        body.length >> 8,
        body.length & 0xff,
        ...txidHeader(Uint8Array.from({ length: 12 }, () => int(256))),
        ...body,
      ]);
    }
    run(b, `random #${i}`);
  }
  for (let i = 0; i < 20_000; i++) {
    const v = vectors[int(vectors.length)]!;
    let b = v.slice();
    for (let n = 1 + int(3); n > 0; n--) {
      switch (int(5)) {
        case 0:
          b[int(b.length)] = int(256);
          break;
        case 1:
          b[20 + int(b.length - 20)]! ^= 1 << int(8);
          break;
        case 2:
          b = b.slice(0, int(b.length + 1));
          break;
        case 3: {
          const at = int(b.length);
          b = Uint8Array.from([
            ...b.subarray(0, at),
            ...Array.from({ length: 4 * (1 + int(3)) }, () => int(256)),
            ...b.subarray(at),
          ]);
          break;
        }
        case 4: // keep the header length consistent so the attributes get parsed
          if (b.length >= 20) new DataView(b.buffer, b.byteOffset).setUint16(2, (b.length - 20) & 0xffff);
          break;
      }
    }
    run(b, `mutation #${i} of a vector`);
  }
  assert.ok(
    stats.accepted > 100,
    `fuzz reached few accepting paths (seed ${seed}): ${JSON.stringify(stats)}`,
  );
});
