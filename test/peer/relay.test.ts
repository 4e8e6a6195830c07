/**
 * Relaying segments while they arrive (cut-through): a peer receiving a segment from a neighbour tells
 * its neighbours (`receiving`) once the first bytes are in, serves requests for it with the bytes so
 * far, and sends the last bytes only from the verified copy. Engines on a ManualClock and a
 * MemoryNetwork, with hand-driven raw peers as supplier and requester.
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import {
  R,
  SEG,
  addPeer,
  demand,
  neighbour,
  push,
  rawPeer,
  request,
  settled,
  sha,
  world,
  type PeerOpts,
} from './harness.ts';

const SEQ = 3;

/** Engine E, a supplier P announcing SEQ, a requester T; both linked to E. */
async function relayWorld(t: TestContext, opts: PeerOpts = {}) {
  const w = world(t, { tracker: { introduceOnJoin: false } });
  const E = await addPeer(w, 'E', opts);
  const P = rawPeer(w, 'P');
  const T = rawPeer(w, 'T');
  await w.sim.resolve(P.join(), 1000);
  await w.sim.resolve(T.join(), 1000);
  const real = w.origin.segment(R, SEQ);
  push(w, [real.attestation]);
  P.on('connect', (to) => P.send(to, { type: 'have', rendition: R, reset: true, ranges: [[0, SEQ]] }));
  w.tracker.introduce(E.id, P.id);
  w.tracker.introduce(E.id, T.id);
  await w.sim.until(() => !!neighbour(E, P)?.holdsSegment(R, SEQ) && !!neighbour(E, T)?.open, 5000, 'links');
  return { w, E, P, T, real };
}

const receivings = (T: ReturnType<typeof rawPeer>, from: string) => T.received(from, 'receiving');

describe('relaying a segment while it arrives', () => {
  test('the first bytes announce it; a requester gets whole chunks at once, the last bytes once verified', async (t) => {
    const { w, E, P, T, real } = await relayWorld(t);
    const half = 4 * 16 * 1024;
    let supplierRequest: number | undefined;
    P.on('message', (_from, msg) => {
      if (msg.type !== 'request') return;
      supplierRequest = msg.requestId;
      P.sendData(E.id, msg.requestId, real.bytes.subarray(0, half), { totalBytes: SEG });
    });
    const d = demand(w, E, SEQ, 8000);
    await w.sim.until(() => receivings(T, E.id).length > 0, 2000, 'receiving announced');
    assert.deepEqual(receivings(T, E.id)[0], { type: 'receiving', rendition: R, mediaSequence: SEQ });
    assert.ok(!E.store.has(R, SEQ), 'announced before it is held');

    T.send(E.id, request(100, SEQ, 6000));
    await w.sim.run(200);
    const partial = T.dataFor(E.id, 100);
    assert.ok(partial, 'relayed before E holds the segment');
    assert.equal(partial.totalBytes, SEG);
    assert.equal(partial.bytes.byteLength, half, 'every whole chunk received so far');
    assert.deepEqual(partial.bytes, real.bytes.subarray(0, half));

    // The rest arrives: E verifies and stores it, and T gets the last bytes.
    P.sendData(E.id, supplierRequest!, real.bytes.subarray(half), { totalBytes: SEG, offset: half });
    const r = await settled(w, d);
    assert.equal(r.source, 'p2p');
    await w.sim.until(() => T.dataFor(E.id, 100)?.bytes.byteLength === SEG, 2000, 'relay completes');
    assert.equal(sha(T.dataFor(E.id, 100)!.bytes), real.attestation.sha256);
    assert.deepEqual(T.received(E.id, 'absent'), []);
  });

  test('a relay that ends without the segment answers busy, and the supplier is not blamed', async (t) => {
    const { w, E, P, T, real } = await relayWorld(t);
    P.on('message', (_from, msg) => {
      if (msg.type === 'request')
        P.sendData(E.id, msg.requestId, real.bytes.subarray(0, 16 * 1024), { totalBytes: SEG });
    });
    const d = demand(w, E, SEQ, 8000);
    await w.sim.until(() => receivings(T, E.id).length > 0, 2000, 'receiving announced');
    T.send(E.id, request(100, SEQ, 6000));
    await w.sim.run(50);
    // The player moves on: E stops fetching the segment, so the relay has nothing to continue from.
    E.engine.drop(R, SEQ);
    await w.sim.run(200);
    assert.ok(
      T.received(E.id, 'absent').some((a) => a.requestId === 100 && a.reason === 'busy'),
      'the relay ended busy',
    );
    void d;
  });

  test('asking a neighbour that said it was receiving, then hearing not-held, does not demote it', async (t) => {
    const w = world(t, { tracker: { introduceOnJoin: false } });
    const E = await addPeer(w, 'E');
    const Q = rawPeer(w, 'Q');
    await w.sim.resolve(Q.join(), 1000);
    push(w, [w.origin.segment(R, SEQ).attestation]);
    let asked = 0;
    Q.on('message', (from, msg) => {
      if (msg.type !== 'request') return;
      asked++;
      Q.send(from, { type: 'absent', requestId: msg.requestId, reason: 'not-held' });
    });
    Q.on('connect', (to) => Q.send(to, { type: 'receiving', rendition: R, mediaSequence: SEQ }));
    w.tracker.introduce(E.id, Q.id);
    await w.sim.until(() => !!neighbour(E, Q)?.receivingSegment(R, SEQ), 5000, 'receiving heard');
    const d = demand(w, E, SEQ, 6000);
    const r = await settled(w, d);
    assert.equal(asked, 1, 'E asked the relay');
    assert.equal(r.source, 'http');
    assert.equal(neighbour(E, Q)!.demoted, false, 'its transfer may have failed: not withheld');
    assert.equal(neighbour(E, Q)!.receivingSegment(R, SEQ), false, 'forgotten');
  });

  test('a neighbour whose relays keep failing earns a failure every four: announcing and dripping is not free', async (t) => {
    const w = world(t, { tracker: { introduceOnJoin: false }, segments: 10 });
    const E = await addPeer(w, 'E');
    const Q = rawPeer(w, 'Q');
    await w.sim.resolve(Q.join(), 1000);
    const seqs = [2, 3, 4, 5, 6];
    push(
      w,
      seqs.map((s) => w.origin.segment(R, s).attestation),
    );
    // Q says it receives each segment, then sends one chunk of it and nothing more.
    Q.on('message', (from, msg) => {
      if (msg.type === 'request')
        Q.sendData(from, msg.requestId, w.origin.segment(R, msg.mediaSequence).bytes.subarray(0, 16 * 1024), {
          totalBytes: w.origin.segment(R, msg.mediaSequence).bytes.byteLength,
        });
    });
    w.tracker.introduce(E.id, Q.id);
    await w.sim.until(() => !!neighbour(E, Q)?.open, 5000, 'link');
    const failuresAfter: number[] = [];
    for (const seq of seqs.slice(0, 4)) {
      Q.send(E.id, { type: 'receiving', rendition: R, mediaSequence: seq });
      await w.sim.run(50);
      const r = await settled(w, demand(w, E, seq, 6000));
      assert.equal(r.source, 'http', `segment ${seq}: from the origin in the end`);
      failuresAfter.push(neighbour(E, Q)!.standing.failures);
      await w.sim.run(2500); // past the relay's backoff
    }
    assert.equal(Q.received(E.id, 'request').length, 4, 'asked once per segment');
    assert.deepEqual(failuresAfter, [0, 0, 0, 1], 'the fourth relay failure in a row is a failure');
  });

  test('announcements are bounded, and a `have` clears them', async (t) => {
    const w = world(t, { tracker: { introduceOnJoin: false } });
    const E = await addPeer(w, 'E');
    const Q = rawPeer(w, 'Q');
    await w.sim.resolve(Q.join(), 1000);
    w.tracker.introduce(E.id, Q.id);
    await w.sim.until(() => !!neighbour(E, Q)?.open, 5000, 'link');
    for (let seq = 10; seq < 30; seq++) Q.send(E.id, { type: 'receiving', rendition: R, mediaSequence: seq });
    await w.sim.run(100);
    const n = neighbour(E, Q)!;
    const remembered = Array.from({ length: 20 }, (_, i) => 10 + i).filter((s) => n.receivingSegment(R, s));
    assert.deepEqual(remembered, [22, 23, 24, 25, 26, 27, 28, 29], 'the newest 8');
    Q.send(E.id, { type: 'have', rendition: R, reset: false, ranges: [[25, 26]] });
    await w.sim.run(100);
    assert.equal(n.receivingSegment(R, 25), false);
    assert.equal(n.holdsSegment(R, 25), true);
    assert.equal(n.receivingSegment(R, 27), true);
    Q.send(E.id, { type: 'lost', rendition: R, ranges: [[27, 27]] });
    await w.sim.run(100);
    assert.equal(n.receivingSegment(R, 27), false);
  });

  test('relay: false announces nothing', async (t) => {
    const { w, E, P, T, real } = await relayWorld(t, { relay: false });
    P.on('message', (_from, msg) => {
      if (msg.type === 'request') P.sendData(E.id, msg.requestId, real.bytes);
    });
    await settled(w, demand(w, E, SEQ, 6000));
    assert.deepEqual(receivings(T, E.id), []);
  });
});
