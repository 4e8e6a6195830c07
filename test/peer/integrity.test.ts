/**
 * The engine's integrity seam (`EngineDeps.integrity`): the engine checks records and bytes with the
 * Integrity it is given, and refuses what that refuses; the default is WebCrypto's Ed25519 and SHA-256
 * (every other engine test runs on it).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Attestation, Check } from '../../protocol/index.ts';
import { PeerEngine, MemorySegmentStore, webCryptoIntegrity, type Integrity } from '../../peer/index.ts';
import { R, world, type Rejected } from './harness.ts';

const refuse = (code: 'attestation-signature-invalid' | 'segment-hash-mismatch'): Promise<Check> =>
  Promise.resolve({ ok: false, code, message: 'refused by the test' });

describe('integrity seam', () => {
  test('the engine verifies with the injected Integrity and rejects what it rejects', async (t) => {
    const w = world(t, { segments: 6 });
    const calls = { keys: [] as string[], records: [] as number[], bytes: [] as number[] };
    // The real checks, except: the bytes of segment 2 and the record of segment 3 are refused.
    const integrity: Integrity = {
      async importKey(publicKey) {
        calls.keys.push(publicKey);
        const real = await webCryptoIntegrity.importKey(publicKey);
        return {
          verify: (att: Attestation) => {
            calls.records.push(att.mediaSequence);
            return att.mediaSequence === 3 ? refuse('attestation-signature-invalid') : real.verify(att);
          },
        };
      },
      checkBytes(att, bytes) {
        calls.bytes.push(att.mediaSequence);
        return att.mediaSequence === 2
          ? refuse('segment-hash-mismatch')
          : webCryptoIntegrity.checkBytes(att, bytes);
      },
    };
    const store = new MemorySegmentStore();
    const engine = new PeerEngine(
      { channel: w.origin.opts.channel, originUrl: w.origin.opts.originUrl, p2p: false },
      {
        clock: w.clock,
        transport: w.net.transport('x'),
        http: w.origin,
        tracker: undefined,
        store,
        integrity,
      },
    );
    t.after(() => engine.destroy());
    const rejected: Rejected[] = [];
    engine.on('segment-rejected', (e) => rejected.push(e));
    await w.sim.resolve(engine.start(), 10_000, 'start');
    assert.deepEqual(calls.keys, [w.origin.publicKey], 'the channel key from the origin, imported once');

    const due = w.clock.now() + 60_000;
    const one = await w.sim.resolve(engine.load(R, 1, due), 10_000, 'load 1');
    assert.deepEqual(one.bytes, w.origin.segment(R, 1).bytes);
    assert.ok(calls.records.includes(1) && calls.bytes.includes(1), 'record and bytes of 1 checked');

    void engine.load(R, 2, due).catch(() => {});
    void engine.load(R, 3, due).catch(() => {});
    await w.sim.run(3000);
    assert.ok(
      rejected.some((r) => r.mediaSequence === 2 && r.reason === 'segment-hash-mismatch'),
      'bytes of 2 refused',
    );
    assert.ok(
      rejected.some((r) => r.mediaSequence === 3 && r.reason === 'attestation-signature-invalid'),
      'record of 3 refused',
    );
    assert.ok(!calls.bytes.includes(3), 'no bytes are checked against a refused record');
    assert.equal(store.has(R, 1), true);
    assert.equal(store.has(R, 2), false, 'refused bytes are never stored');
    assert.equal(store.has(R, 3), false, 'bytes without a verified record are never stored');
  });

  test('the default, webCryptoIntegrity, checks real signatures and SHA-256', async (t) => {
    const w = world(t, { segments: 2 });
    const { bytes, attestation } = w.origin.segment(R, 1);
    const verifier = await w.sim.resolve(webCryptoIntegrity.importKey(w.origin.publicKey));
    assert.deepEqual(await w.sim.resolve(verifier.verify(attestation)), { ok: true });
    const forged = await w.sim.resolve(
      verifier.verify({ ...attestation, byteLength: attestation.byteLength + 1 }),
    );
    assert.equal(forged.ok ? 'ok' : forged.code, 'attestation-signature-invalid');
    assert.deepEqual(await w.sim.resolve(webCryptoIntegrity.checkBytes(attestation, bytes)), { ok: true });
    const flipped = bytes.slice();
    const last = bytes.length - 1;
    flipped[last] = flipped[last]! ^ 1;
    const bad = await w.sim.resolve(webCryptoIntegrity.checkBytes(attestation, flipped));
    assert.equal(bad.ok ? 'ok' : bad.code, 'segment-hash-mismatch');
    const short = await w.sim.resolve(webCryptoIntegrity.checkBytes(attestation, bytes.subarray(1)));
    assert.equal(short.ok ? 'ok' : short.code, 'segment-length-mismatch');
  });
});
