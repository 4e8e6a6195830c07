/**
 * What a viewer feels (issue "Browser viewers"): startup never waits for the tracker, segments the
 * player fetched itself before the engine was ready are verified and shared, requests spread over
 * every neighbour holding a segment, an idle engine sleeps, and a stall caused by a P2P transfer held
 * back past its deadline is attributed to P2P. Real engines on a ManualClock and a MemoryNetwork.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { StallAttribution } from '../../player/src/stalls.ts';
import {
  addPeer,
  assertVerified,
  demand,
  give,
  linked,
  makePeer,
  pid,
  push,
  R,
  rawNeighbour,
  request,
  settled,
  world,
  type World,
} from './harness.ts';

const attest = (w: World, ...seqs: number[]) =>
  push(
    w,
    seqs.map((s) => w.origin.segment(R, s).attestation),
  );

describe('startup', () => {
  test('bytes the player fetched before the engine was ready are verified, stored to share and counted as HTTP; forged ones are not', async (t) => {
    const w = world(t, { tracker: { latencyMs: 5000 }, segments: 6 });
    const A = makePeer(w, 'A');
    assert.equal(A.engine.ready, false);
    A.engine.adopt(R, 2, w.origin.segment(R, 2).bytes);
    const forged = new Uint8Array(w.origin.segment(R, 3).bytes);
    forged[100]! ^= 0xff;
    A.engine.adopt(R, 3, forged);
    await w.sim.resolve(A.engine.start(), 3000, 'start');
    await w.sim.until(() => A.store.has(R, 2), 3000, 'adopted segment stored');
    await w.sim.run(1000);
    assert.equal(A.store.has(R, 3), false, 'the forged copy is not kept');
    assert.deepEqual(A.badStores, []);
    assert.equal(A.engine.httpBytes, w.origin.segment(R, 2).bytes.byteLength);
    assert.equal(A.engine.p2pBytes, 0);
  });
});

describe('spreading requests', () => {
  test('segments come from every neighbour that holds them, not all from the fastest', async (t) => {
    const w = world(t, { tracker: { introduceOnJoin: false }, segments: 12 });
    // H1 is twice as fast as the others: the old choice (least ETA) took everything from it.
    w.net.setUploadBandwidth(pid('H1'), 2_000_000);
    w.net.setUploadBandwidth(pid('H2'), 1_000_000);
    w.net.setUploadBandwidth(pid('H3'), 1_000_000);
    const holders = [await addPeer(w, 'H1'), await addPeer(w, 'H2'), await addPeer(w, 'H3')];
    const V = await addPeer(w, 'V');
    const seqs = [2, 3, 4, 5, 6, 7, 8, 9, 10];
    for (const h of holders) {
      give(w, h, ...seqs);
      w.tracker.introduce(V.id, h.id);
      await linked(w, V, h);
    }
    attest(w, ...seqs);
    await w.sim.run(500);
    for (const seq of seqs) {
      const d = demand(w, V, seq, 8000);
      assert.equal((await settled(w, d)).source, 'p2p');
      assertVerified(w, d);
    }
    const from = holders.map((h) => V.engine.receivedFrom[h.id] ?? 0);
    const seg = w.origin.segment(R, 2).bytes.byteLength;
    t.diagnostic(`segments from H1, H2, H3: ${from.map((b) => (b / seg).toFixed(1)).join(', ')}`);
    for (const [i, b] of from.entries()) assert.ok(b >= 2 * seg, `H${i + 1} served ${b} B`);
  });
});

describe('fair share', () => {
  for (const planned of [false, true])
    test(
      planned
        ? 'while the tracker plans who feeds whom, an uploader over one stream copy serves requests that can wait'
        : 'an uploader over one stream copy answers busy to requests that can wait, and still serves urgent ones',
      async (t) => {
        const w = world(t, { tracker: { introduceOnJoin: false }, segments: 40 });
        w.net.setUploadBandwidth(pid('E'), 4_000_000);
        const E = await addPeer(w, 'E');
        give(w, E, ...Array.from({ length: 40 }, (_, i) => i));
        const raws = [await rawNeighbour(w, 'A', E), await rawNeighbour(w, 'B', E)];
        if (planned) {
          // Chandelier's pushes carry ranked suppliers (none for a first-tier peer).
          w.tracker.setParents(E.id, []);
          await w.sim.run(100);
        }
        const answers = { busy: 0, urgentBusy: 0, data: new Set<string>() };
        const urgent = new Set<string>();
        for (const raw of raws)
          raw.on('message', (_from, msg) => {
            if (msg.type === 'data') answers.data.add(`${raw.id}/${msg.requestId}`);
            if (msg.type === 'absent' && msg.reason === 'busy') {
              answers.busy++;
              if (urgent.has(`${raw.id}/${msg.requestId}`)) answers.urgentBusy++;
            }
          });
        // Two neighbours take a segment each every 400 ms (2.5 copies of a 2 s stream each), half of
        // them due in 1 s (urgent), half in 8 s.
        let id = 1;
        for (let i = 0; i < 40; i++) {
          const raw = raws[i % 2]!;
          const due = i % 4 < 2 ? 1000 : 8000;
          if (due === 1000) urgent.add(`${raw.id}/${id}`);
          raw.send(E.id, request(id++, i, due));
          await w.sim.run(400);
        }
        await w.sim.run(3000);
        t.diagnostic(`${answers.busy} busy answers, ${answers.data.size} requests served`);
        if (planned) assert.equal(answers.busy, 0, 'the plan spreads the load: nobody is turned away');
        else assert.ok(answers.busy > 0, 'requests that could wait were sent elsewhere');
        assert.equal(answers.urgentBusy, 0, 'urgent requests are served');
        assert.ok(E.engine.uploads.uploadedBytes > 0);
      },
    );
});

describe('an idle engine', () => {
  test('schedules nothing while no segment is demanded, and wakes for a demand', async (t) => {
    const w = world(t, { tracker: { reportIntervalMs: 60_000 }, segments: 6 });
    const A = await addPeer(w, 'A');
    await w.sim.run(2000);
    // Playlist polling (one timer), the report timer: nothing that ticks every 100 ms.
    let fired = 0;
    const setTimeout = w.clock.setTimeout.bind(w.clock);
    w.clock.setTimeout = (fn, ms) => setTimeout(() => (fired++, fn()), ms);
    await w.sim.run(10_000);
    t.diagnostic(`${fired} timers fired in 10 s idle`);
    assert.ok(fired <= 60, `${fired} timers in 10 s (a 100 ms scheduler alone would fire 100)`);
    const d = demand(w, A, 4, 3000);
    assert.equal((await settled(w, d)).source, 'http');
  });
});

describe('stall attribution', () => {
  test('a stall caused by a P2P transfer held back past its deadline is attributed to P2P', async (t) => {
    // A slow origin (100 kB segments at 50 kB/s): the switch to HTTP cannot make up for the time lost.
    const w = world(t, { tracker: { introduceOnJoin: false }, segments: 6, origin: { bytesPerS: 50_000 } });
    const V = await addPeer(w, 'V');
    // A announces every segment and never sends one (the transfer is held back).
    const A = await rawNeighbour(w, 'A', V);
    A.send(V.id, { type: 'have', rendition: R, reset: true, ranges: [[0, 1000]] });
    await w.sim.run(200);
    const stalls = new StallAttribution({ bufferEndS: () => 10, liveEdgeS: () => 30 }, () => w.clock.now());
    const late: string[] = [];
    V.engine.on('p2p-late', (e) => {
      late.push(`${e.mediaSequence}:${e.why}`);
      stalls.p2pLate();
    });
    const d = demand(w, V, 3, 2500);
    // The playhead reaches segment 3 at its deadline: the video waits from then on.
    await w.sim.until(() => w.clock.now() >= d.deadlineAt || d.result !== undefined, 5000);
    assert.equal(d.result, undefined, 'not there by its deadline: the video stalls');
    stalls.started();
    await settled(w, d);
    const stall = stalls.ended();
    t.diagnostic(`segment 3 due at ${d.deadlineAt} ms, arrived at ${d.at} ms; P2P late: ${late.join(', ')}`);
    assert.deepEqual(late, ['3:stalled']);
    assert.equal(d.result!.source, 'http', 'switched to the origin');
    assert.equal(stall?.cause, 'p2p');
    assert.equal(stalls.counts.p2p, 1);
    assert.equal(stalls.counts.unknown + stalls.counts.origin + stalls.counts.source + stalls.counts.cpu, 0);
  });

  test('causes: the live edge reached is the source, a late HTTP segment the origin, long tasks the CPU', () => {
    let now = 0;
    let edge = 20;
    const s = new StallAttribution({ bufferEndS: () => 19.9, liveEdgeS: () => edge }, () => now);
    s.started();
    now += 1500;
    assert.equal(s.ended()!.cause, 'source');
    edge = 40;
    now += 10_000;
    s.started();
    s.originLate();
    now += 800;
    assert.equal(s.ended()!.cause, 'origin');
    now += 10_000;
    s.started();
    now += 900;
    s.busy(700);
    now += 100;
    assert.equal(s.ended()!.cause, 'cpu');
    now += 10_000;
    s.started();
    now += 500;
    assert.equal(s.ended()!.cause, 'unknown');
    // P2P is blamed first, whatever else was seen.
    now += 10_000;
    s.started();
    s.busy(2000);
    s.originLate();
    s.p2pLate();
    now += 2000;
    assert.equal(s.ended()!.cause, 'p2p');
    assert.deepEqual(s.counts, { p2p: 1, cpu: 1, source: 1, origin: 1, unknown: 1 });
    assert.equal(s.totalMs, 1500 + 800 + 1000 + 500 + 2000);
    assert.equal(s.ended(), undefined, 'no stall in progress');
    s.destroy();
  });
});
