import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  ATTESTATION_VERSION,
  GENESIS_HASH,
  attestationHash,
  attestationPayload,
  checkAttestationFor,
  checkSegmentBytes,
  importChannelKey,
  parseAttestation,
  sha256Hex,
  toBase64Url,
  verifyAttestationSignature,
  verifyChain,
  verifySegment,
  type Attestation,
  type Check,
} from '../../protocol/index.ts';
import { ChannelStore } from '../../source/index.ts';
import { tempDir } from '../helpers/source.ts';

const SEGMENT_SIZE = 1500;

let counter = 0;
/** Writes a small random "segment" into `dir` and returns its path and bytes. */
function writeSegment(dir: string, size = SEGMENT_SIZE): { file: string; bytes: Uint8Array } {
  const bytes = new Uint8Array(crypto.randomBytes(size));
  const file = path.join(dir, `incoming-${process.pid}-${++counter}.ts`);
  fs.writeFileSync(file, bytes);
  return { file, bytes };
}

function publish(
  store: ChannelStore,
  dir: string,
  rendition: string,
  mediaSequence: number,
  size = SEGMENT_SIZE,
): { att: Attestation; bytes: Uint8Array } {
  const { file, bytes } = writeSegment(dir, size);
  const att = store.publishSegment({
    rendition,
    mediaSequence,
    discontinuitySequence: 0,
    durationMs: 2000,
    file,
  });
  return { att, bytes };
}

const code = (c: Check): string => (c.ok ? 'ok' : c.code);

describe('attestations signed by a ChannelStore', () => {
  let dir: string;
  let store: ChannelStore;
  let key: CryptoKey;
  /** r1 sequences 0..4 */
  const chain: { att: Attestation; bytes: Uint8Array }[] = [];
  /** r2 sequences 0..2 */
  const other: { att: Attestation; bytes: Uint8Array }[] = [];
  /** Same channel id, different data dir: a different key (an impostor). */
  let impostor: ChannelStore;
  let impostorAtt: { att: Attestation; bytes: Uint8Array };
  let impostorDir: string;

  before(async () => {
    dir = tempDir('peertv-att-');
    store = new ChannelStore(dir, 'chan');
    for (let seq = 0; seq < 5; seq++) chain.push(publish(store, dir, 'r1', seq));
    for (let seq = 0; seq < 3; seq++) other.push(publish(store, dir, 'r2', seq));
    key = await importChannelKey(store.signer.publicKey);
    impostorDir = tempDir('peertv-att-other-');
    impostor = new ChannelStore(impostorDir, 'chan');
    impostorAtt = publish(impostor, impostorDir, 'r1', 1);
  });

  after(() => {
    store.destroy();
    impostor.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(impostorDir, { recursive: true, force: true });
  });

  const id = (seq: number, rendition = 'r1', channel = 'chan') => ({
    channel,
    rendition,
    mediaSequence: seq,
  });

  test('the store publishes what it signed: file moved, hash and length of the bytes', async () => {
    const { att, bytes } = chain[2]!;
    assert.equal(att.v, ATTESTATION_VERSION);
    assert.equal(att.channel, 'chan');
    assert.equal(att.rendition, 'r1');
    assert.equal(att.mediaSequence, 2);
    assert.equal(att.discontinuitySequence, 0);
    assert.equal(att.durationMs, 2000);
    assert.equal(att.byteLength, SEGMENT_SIZE);
    assert.equal(att.sha256, await sha256Hex(bytes));
    assert.equal(att.sha256, crypto.createHash('sha256').update(bytes).digest('hex'));
    assert.deepEqual(new Uint8Array(fs.readFileSync(store.segmentPath('r1', 2))), bytes);
    assert.ok(Math.abs(att.publishedAtMs - Date.now()) < 60_000);
    assert.equal(fs.readdirSync(dir).filter((f) => f.startsWith('incoming-')).length, 0, 'inputs were moved');
  });

  test('public key is 32 raw bytes in base64url; bad keys are refused on import', async () => {
    assert.match(store.signer.publicKey, /^[A-Za-z0-9_-]{43}$/);
    await assert.rejects(importChannelKey(''), TypeError);
    await assert.rejects(importChannelKey(store.signer.publicKey.slice(0, 42)), TypeError);
    await assert.rejects(importChannelKey(`${store.signer.publicKey}AA`), TypeError);
    await assert.rejects(importChannelKey(store.signer.publicKey.replace(/^./, '+')), TypeError);
  });

  test('a good segment verifies', async () => {
    for (const { att, bytes } of chain) {
      assert.equal(code(await verifySegment(att, key, id(att.mediaSequence), bytes)), 'ok');
      assert.equal(code(await verifyAttestationSignature(att, key)), 'ok');
      assert.equal(code(await checkSegmentBytes(att, bytes)), 'ok');
    }
    const { att, bytes } = other[1]!;
    assert.equal(code(await verifySegment(att, key, id(1, 'r2'), bytes)), 'ok');
  });

  test('a flipped byte anywhere → segment-hash-mismatch', async () => {
    const { att, bytes } = chain[0]!;
    for (const pos of [0, 1, 700, SEGMENT_SIZE - 1]) {
      const copy = bytes.slice();
      copy[pos]! ^= 0x01;
      const r = await verifySegment(att, key, id(0), copy);
      assert.equal(code(r), 'segment-hash-mismatch', `byte ${pos}`);
      assert.equal(code(await checkSegmentBytes(att, copy)), 'segment-hash-mismatch');
    }
  });

  test('truncated or extended bytes → segment-length-mismatch', async () => {
    const { att, bytes } = chain[0]!;
    const variants = [
      bytes.slice(0, -1),
      bytes.slice(1),
      new Uint8Array(0),
      Uint8Array.from([...bytes, 0]),
      Uint8Array.from([...bytes, ...bytes]),
    ];
    for (const v of variants) {
      const r = await verifySegment(att, key, id(0), v);
      assert.equal(code(r), 'segment-length-mismatch', `length ${v.length}`);
      assert.ok(!r.ok && r.message.includes(String(SEGMENT_SIZE)));
    }
  });

  test('swapped segments are caught', async () => {
    // Bytes of seq 1 presented as seq 2 (same length): hash mismatch.
    assert.equal(
      code(await verifySegment(chain[2]!.att, key, id(2), chain[1]!.bytes)),
      'segment-hash-mismatch',
    );
    // The attestation of seq 1 (with its own bytes) presented for seq 2: not about that segment.
    assert.equal(
      code(await verifySegment(chain[1]!.att, key, id(2), chain[1]!.bytes)),
      'attestation-mismatch',
    );
    // Same for another rendition or another channel.
    assert.equal(
      code(await verifySegment(other[1]!.att, key, id(1, 'r1'), other[1]!.bytes)),
      'attestation-mismatch',
    );
    assert.equal(
      code(await verifySegment(chain[1]!.att, key, id(1, 'r1', 'chan2'), chain[1]!.bytes)),
      'attestation-mismatch',
    );
    assert.equal(code(checkAttestationFor(chain[1]!.att, id(1))), 'ok');
    assert.equal(code(checkAttestationFor(chain[1]!.att, id(0))), 'attestation-mismatch');
  });

  test('any tampered record field with the signature kept → attestation-signature-invalid', async () => {
    const { att, bytes } = chain[3]!;
    const tampered: Partial<Attestation>[] = [
      { byteLength: att.byteLength + 1 },
      { sha256: att.sha256.replace(/^./, att.sha256[0] === '0' ? '1' : '0') },
      { prevHash: GENESIS_HASH },
      { durationMs: att.durationMs + 1 },
      { publishedAtMs: att.publishedAtMs + 1 },
      { discontinuitySequence: 1 },
      { mediaSequence: 4 },
      { rendition: 'r2' },
      { channel: 'chan2' },
    ];
    for (const patch of tampered) {
      const t = { ...att, ...patch } as Attestation;
      assert.equal(
        code(await verifyAttestationSignature(t, key)),
        'attestation-signature-invalid',
        JSON.stringify(patch),
      );
    }
    // Re-hashing substituted bytes does not help the attacker: the signature covers sha256 and length.
    const evil = new Uint8Array(crypto.randomBytes(SEGMENT_SIZE + 10));
    const forged: Attestation = { ...att, byteLength: evil.length, sha256: await sha256Hex(evil) };
    assert.equal(code(await verifySegment(forged, key, id(3), evil)), 'attestation-signature-invalid');
    // The untampered record still verifies with its bytes.
    assert.equal(code(await verifySegment(att, key, id(3), bytes)), 'ok');
  });

  test('a tampered or badly encoded signature is refused', async () => {
    const { att } = chain[0]!;
    const sig = Buffer.from(att.signature, 'base64url');
    sig[10]! ^= 0x80;
    assert.equal(
      code(await verifyAttestationSignature({ ...att, signature: toBase64Url(sig) }, key)),
      'attestation-signature-invalid',
    );
    // A valid signature of another record.
    assert.equal(
      code(await verifyAttestationSignature({ ...att, signature: chain[1]!.att.signature }, key)),
      'attestation-signature-invalid',
    );
    for (const signature of ['', 'not base64!', att.signature.slice(0, -4), `${att.signature}AAAA`])
      assert.equal(
        code(await verifyAttestationSignature({ ...att, signature }, key)),
        'attestation-malformed',
      );
  });

  test("a record signed by another channel's key is rejected", async () => {
    const { att, bytes } = impostorAtt;
    assert.notEqual(impostor.signer.publicKey, store.signer.publicKey);
    // Same channel id, rendition and sequence: only the key differs.
    assert.equal(code(await verifySegment(att, key, id(1), bytes)), 'attestation-signature-invalid');
    assert.equal(code(await verifyChain([chain[0]!.att, att], key)), 'attestation-signature-invalid');
    // …and it is fine under its own key.
    const itsKey = await importChannelKey(impostor.signer.publicKey);
    assert.equal(code(await verifySegment(att, itsKey, id(1), bytes)), 'ok');
    // Our records do not verify under the impostor's key.
    assert.equal(
      code(await verifyAttestationSignature(chain[1]!.att, itsKey)),
      'attestation-signature-invalid',
    );
  });

  test('chain: first prevHash is GENESIS_HASH and each record links to the previous one', async () => {
    assert.equal(GENESIS_HASH, '0'.repeat(64));
    assert.equal(chain[0]!.att.prevHash, GENESIS_HASH);
    assert.equal(other[0]!.att.prevHash, GENESIS_HASH, 'each rendition has its own chain');
    for (let i = 1; i < chain.length; i++)
      assert.equal(chain[i]!.att.prevHash, await attestationHash(chain[i - 1]!.att));
    // attestationHash is the SHA-256 of the canonical signed payload, ignoring the signature.
    const a = chain[1]!.att;
    assert.equal(
      await attestationHash(a),
      crypto.createHash('sha256').update(attestationPayload(a)).digest('hex'),
    );
    assert.equal(await attestationHash({ ...a, signature: 'x' } as Attestation), await attestationHash(a));
    assert.notEqual(await attestationHash({ ...a, durationMs: a.durationMs + 1 }), await attestationHash(a));
  });

  test('a good chain of 5 verifies (and so do its sub-runs)', async () => {
    const records = chain.map((c) => c.att);
    assert.equal(code(await verifyChain(records, key)), 'ok');
    assert.equal(code(await verifyChain(records.slice(2), key)), 'ok');
    assert.equal(code(await verifyChain([records[4]!], key)), 'ok');
    assert.equal(code(await verifyChain([], key)), 'ok');
    assert.equal(
      code(
        await verifyChain(
          other.map((c) => c.att),
          key,
        ),
      ),
      'ok',
    );
  });

  test('reordered, gapped, duplicated or mixed chains → attestation-chain-broken', async () => {
    const r = chain.map((c) => c.att);
    const cases: [string, Attestation[]][] = [
      ['swapped', [r[0]!, r[2]!, r[1]!, r[3]!, r[4]!]],
      ['reversed', [...r].reverse()],
      ['dropped middle', [r[0]!, r[1]!, r[3]!, r[4]!]],
      ['duplicate', [r[0]!, r[1]!, r[1]!, r[2]!]],
      ['other rendition', [r[0]!, other[1]!.att, r[2]!]],
      ['other rendition, same seq', [other[0]!.att, r[1]!]],
    ];
    for (const [what, records] of cases) {
      const c = await verifyChain(records, key);
      assert.equal(code(c), 'attestation-chain-broken', what);
    }
  });

  test('a chain with one tampered record → attestation-signature-invalid', async () => {
    const r = chain.map((c) => c.att);
    r[3] = { ...r[3]!, byteLength: r[3]!.byteLength - 1 };
    assert.equal(code(await verifyChain(r, key)), 'attestation-signature-invalid');
  });

  describe('parseAttestation', () => {
    const good = (): Record<string, unknown> =>
      JSON.parse(JSON.stringify(chain[1]!.att)) as Record<string, unknown>;

    test('accepts a record received as JSON, and it still verifies', async () => {
      const r = parseAttestation(good());
      assert.ok(r.ok);
      assert.deepEqual(r.attestation, chain[1]!.att);
      assert.equal(code(await verifySegment(r.attestation, key, id(1), chain[1]!.bytes)), 'ok');
    });

    const rejects = (what: string, input: unknown): void => {
      const r = parseAttestation(input);
      assert.equal(r.ok, false, what);
      assert.equal(!r.ok && r.code, 'attestation-malformed', what);
    };

    test('rejects non-objects', () => {
      for (const v of [null, undefined, 0, 1, 'x', JSON.stringify(chain[1]!.att), true, [], [good()]])
        rejects(JSON.stringify(v) ?? 'undefined', v);
    });

    test('rejects extra and missing fields', () => {
      rejects('extra field', { ...good(), extra: 1 });
      rejects('kind field', { ...good(), kind: 'segment' });
      for (const k of Object.keys(good())) {
        const o = good();
        delete o[k];
        rejects(`missing ${k}`, o);
      }
    });

    test('rejects other versions', () => {
      for (const v of [0, 2, '1', 1.5, null]) rejects(`v=${String(v)}`, { ...good(), v });
    });

    test('rejects invalid channel and rendition names', () => {
      for (const channel of ['', 'Chan', '-chan', 'a/b', '..', 'a'.repeat(65), 7, null])
        rejects(`channel ${String(channel)}`, { ...good(), channel });
      for (const rendition of ['', '720P', '../r1', 'a'.repeat(33), 1])
        rejects(`rendition ${String(rendition)}`, { ...good(), rendition });
    });

    test('rejects negative, fractional, huge or non-numeric numbers', () => {
      for (const k of ['mediaSequence', 'discontinuitySequence', 'byteLength', 'durationMs', 'publishedAtMs'])
        for (const v of [-1, 1.5, -0.5, Number.MAX_SAFE_INTEGER + 1, NaN, Infinity, '3', null])
          rejects(`${k}=${String(v)}`, { ...good(), [k]: v });
    });

    test('rejects bad hex in sha256 and prevHash', () => {
      const h = chain[1]!.att.sha256;
      for (const k of ['sha256', 'prevHash'])
        for (const v of [
          h.toUpperCase(),
          h.slice(0, 63),
          `${h}0`,
          `${h.slice(0, 63)}g`,
          '',
          42,
          `0x${h.slice(2)}`,
        ])
          rejects(`${k}=${String(v)}`, { ...good(), [k]: v });
    });

    test('rejects signatures of the wrong length or encoding', () => {
      const sig = Buffer.from(chain[1]!.att.signature, 'base64url');
      const variants: unknown[] = [
        toBase64Url(sig.subarray(0, 63)),
        toBase64Url(Buffer.concat([sig, Buffer.from([0])])),
        sig.toString('base64'), // padded standard base64
        '',
        `${chain[1]!.att.signature.slice(0, -1)}!`,
        64,
        null,
      ];
      for (const signature of variants) rejects(`signature ${String(signature)}`, { ...good(), signature });
    });
  });

  describe('a reopened store', () => {
    test('keeps its key, continues the chain and refuses used sequence numbers', async () => {
      const d = tempDir('peertv-reopen-');
      try {
        const first = new ChannelStore(d, 'chan');
        const published = [0, 1, 2].map((seq) => publish(first, d, 'r1', seq).att);
        first.publishGap({ rendition: 'r1', mediaSequence: 3, discontinuitySequence: 0, durationMs: 2000 });
        const pub = first.signer.publicKey;
        first.destroy();

        const again = new ChannelStore(d, 'chan');
        try {
          assert.equal(again.signer.publicKey, pub, 'same key after reopening');
          assert.equal(again.nextSequenceOf('r1'), 4);
          assert.deepEqual(again.entry('r1', 2), { kind: 'segment', attestation: published[2] });
          assert.equal(again.entry('r1', 3)?.kind, 'gap');

          // Used numbers (segments and gaps) are refused and the existing file is untouched.
          const before = fs.readFileSync(again.segmentPath('r1', 1));
          for (const seq of [0, 1, 2, 3]) {
            const { file } = writeSegment(d);
            assert.throws(
              () =>
                again.publishSegment({
                  rendition: 'r1',
                  mediaSequence: seq,
                  discontinuitySequence: 0,
                  durationMs: 2000,
                  file,
                }),
              /already taken/,
              `seq ${seq}`,
            );
            fs.rmSync(file);
          }
          assert.deepEqual(fs.readFileSync(again.segmentPath('r1', 1)), before);

          // The next record chains onto the last segment published before the restart (the gap has no record).
          const next = publish(again, d, 'r1', 4).att;
          assert.equal(next.prevHash, await attestationHash(published[2]!));
          const k = await importChannelKey(again.signer.publicKey);
          assert.equal(code(await verifyChain([...published, next], k)), 'ok');
          // Another rendition of the reopened store starts its own chain.
          assert.equal(publish(again, d, 'r9', 4).att.prevHash, GENESIS_HASH);
        } finally {
          again.destroy();
        }
      } finally {
        fs.rmSync(d, { recursive: true, force: true });
      }
    });

    test('refuses a used sequence number in the same process too', () => {
      const { file } = writeSegment(dir);
      assert.throws(
        () =>
          store.publishSegment({
            rendition: 'r1',
            mediaSequence: 4,
            discontinuitySequence: 0,
            durationMs: 2000,
            file,
          }),
        /already taken/,
      );
      assert.ok(fs.existsSync(file), 'the refused file was not moved');
      fs.rmSync(file);
    });
  });
});
