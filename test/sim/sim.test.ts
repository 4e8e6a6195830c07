/**
 * The simulator: deterministic, conserving bytes, and right where the answer is known. Small scenarios
 * in virtual time (seconds of wall time each).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  figures,
  scenarioFor,
  scenarioFromJson,
  Rng,
  sample,
  ScenarioError,
  simulate,
  uploadDistribution,
  type SimResult,
} from '../../sim/index.ts';
import { peertv } from '../helpers/process.ts';

/** The result without what depends on the machine (wall time, memory). */
const comparable = (r: SimResult) => JSON.stringify({ ...r, run: { ...r.run, wallS: 0, rssMaxBytes: 0 } });

describe('simulator', () => {
  test('the same seed gives the same run, byte for byte; another seed does not', async () => {
    const s = scenarioFor('steady', { peers: 6, durationS: 40, seed: 7 });
    const a = await simulate(s);
    const b = await simulate(s);
    assert.equal(comparable(a), comparable(b));
    const c = await simulate({ ...s, seed: 8 });
    assert.notEqual(comparable(a), comparable(c));
  });

  test('a byte scale shrinks the run, not its decisions: capped uplinks decide alike at 1 and 1/8', async () => {
    // Heterogeneous uplinks (some below the stream's bitrate) make every decision depend on capacity,
    // chunking and throughput estimates: the settings counted in bytes must shrink with the payloads.
    // Store and forward: with relays, every chunk is a decision, and this small a swarm turns float
    // rounding into different runs (the next test compares means over seeds instead).
    const s = scenarioFor('heterogeneous', { peers: 12, durationS: 40, seed: 3 });
    const full = figures(await simulate(s, { relay: false }));
    const scaled = figures(await simulate(s, { byteScale: 1 / 8, relay: false }));
    assert.ok(full.offload > 0.2, `P2P carries a share (offload ${full.offload})`);
    assert.ok(Math.abs(full.offload - scaled.offload) < 0.03, `offload ${full.offload} vs ${scaled.offload}`);
    assert.equal(scaled.stalls, full.stalls);
    assert.ok(
      Math.abs(full.depth.mean - scaled.depth.mean) < 0.25,
      `depth ${full.depth.mean} vs ${scaled.depth.mean}`,
    );
    assert.ok(
      Math.abs(full.segmentMs.p2p.p50 - scaled.segmentMs.p2p.p50) < 0.1 * full.segmentMs.p2p.p50 + 5,
      `P2P load p50 ${full.segmentMs.p2p.p50} vs ${scaled.segmentMs.p2p.p50} ms`,
    );
    // Reported bytes are scaled back to full size.
    assert.ok(Math.abs(scaled.consumedBytes / full.consumedBytes - 1) < 0.02);
  });

  test('with relays, a byte scale adds no bias: mean figures over six seeds agree at 1 and 1/8', async () => {
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const runs = { full: [] as ReturnType<typeof figures>[], scaled: [] as ReturnType<typeof figures>[] };
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const s = scenarioFor('heterogeneous', { peers: 12, durationS: 40, seed });
      runs.full.push(figures(await simulate(s)));
      runs.scaled.push(figures(await simulate(s, { byteScale: 1 / 8 })));
    }
    const of = (k: 'full' | 'scaled', f: (x: ReturnType<typeof figures>) => number) => mean(runs[k].map(f));
    const offload = [of('full', (f) => f.offload), of('scaled', (f) => f.offload)] as const;
    assert.ok(offload[0] > 0.2, `P2P carries a share (offload ${offload[0]})`);
    assert.ok(Math.abs(offload[0] - offload[1]) < 0.02, `mean offload ${offload[0]} vs ${offload[1]}`);
    const depth = [of('full', (f) => f.depth.mean), of('scaled', (f) => f.depth.mean)] as const;
    assert.ok(Math.abs(depth[0] - depth[1]) < 0.15, `mean depth ${depth[0]} vs ${depth[1]}`);
    assert.deepEqual(
      runs.scaled.map((f) => f.stalls),
      runs.full.map((f) => f.stalls),
    );
  });

  test('seeks: viewers go back into the window and return to the live edge; waiting for a seek is not a stall', async () => {
    const r = await simulate(scenarioFor('seeks', { peers: 6, durationS: 90, seed: 2 }));
    const f = figures(r);
    assert.ok(f.seeks.count >= 6, `${f.seeks.count} seeks`);
    assert.equal(f.stalls, 0);
    assert.equal(f.continuity, 1);
    // Behind live by choice for a while (no jump back to the edge), then at the edge again.
    assert.ok(f.latencyS.p95 > f.latencyS.p50 + r.scenario.segmentDurationS, JSON.stringify(f.latencyS));
    assert.ok(f.latencyS.p50 < 3 * r.scenario.segmentDurationS, JSON.stringify(f.latencyS));
  });

  test('one viewer alone plays everything from the origin: offload 0, no stall, bytes conserved', async () => {
    const r = await simulate(scenarioFor('steady', { peers: 1, durationS: 40 }));
    const f = figures(r);
    const [v] = r.viewers;
    assert.ok(v && v.startupMs !== null, 'it started');
    assert.equal(v.p2pBytes, 0);
    assert.ok(v.segmentsPlayed >= 10, `played ${v.segmentsPlayed}`);
    assert.equal(f.stalls, 0);
    assert.equal(f.continuity, 1);
    assert.equal(f.offload, 0);
    // What the origin served as segments is what the viewer counted from HTTP (nothing aborted).
    assert.equal(r.originSegmentBytes, v.httpBytes);
    assert.equal(r.network.sentBytes, 0);
  });

  test('two viewers: the second gets its segments from the first once both are in', async () => {
    const r = await simulate(scenarioFor('steady', { peers: 2, durationS: 60, joinOverS: 2 }));
    const f = figures(r);
    assert.equal(f.stalls, 0);
    const [a, b] = r.viewers;
    assert.ok(a && b);
    const fed = [a, b].find((v) => !v.firstTier)!;
    const feeder = [a, b].find((v) => v.firstTier)!;
    assert.ok(fed && feeder, 'one of them is the first tier');
    assert.ok(
      fed.p2pBytes > 0.7 * (fed.p2pBytes + fed.httpBytes),
      `P2P share ${fed.p2pBytes}/${fed.httpBytes}`,
    );
    assert.ok(feeder.uploadedBytes >= fed.p2pBytes);
    // Conservation: every byte sent over the network arrived or was discarded by a close.
    assert.equal(
      r.network.sentBytes,
      r.network.receivedBytes + r.network.discardedBytes + r.network.inFlightBytes,
    );
    assert.ok(f.depth.max >= 2, 'segments went one hop beyond the origin');
  });

  test('a partition between the two viewers: the fed one falls back to HTTP without a stall; P2P resumes after it heals', async () => {
    let cut: [string, string] | undefined;
    const r = await simulate(scenarioFor('steady', { peers: 2, durationS: 120, joinOverS: 2 }), {
      events: [
        {
          atS: 30,
          run: (w) => {
            const [x, y] = w.peerIds();
            if (!x || !y) return;
            w.network.partition(x, y);
            cut = [x, y];
          },
        },
        {
          atS: 60,
          run: (w) => {
            if (cut) w.network.heal(cut[0], cut[1]);
          },
        },
      ],
    });
    assert.ok(cut, 'both were there to cut');
    const f = figures(r);
    assert.equal(f.stalls, 0);
    assert.equal(f.continuity, 1);
    const tick = (atS: number) => r.ticks.find((t) => t.atS === atS)!;
    // P2P bytes grew before the cut and again in the last stretch after the heal.
    assert.ok(tick(30).p2pBytes > 0);
    assert.ok(tick(120).p2pBytes > tick(90).p2pBytes, 'P2P resumed after the heal');
  });

  test('npm run sim prints the one-line summary last and writes the report', async () => {
    const out = await peertv(['sim', '--peers', '4', '--duration', '20', '--out', '/tmp/peertv-sim-smoke'], {
      timeoutMs: 120_000,
    });
    assert.equal(out.code, 0, out.stderr);
    const last = out.stdout.trim().split('\n').at(-1)!;
    assert.match(
      last,
      /^offload=\S+ continuity=\S+ stalls=\d+ startup_p95_s=\S+ latency_p50_s=\S+ peers=4 speed=\S+x scenario=steady policy=random$/,
    );
  });

  test('scenario files: presets with overrides, "unlimited", and every bad value refused by name', () => {
    const s = scenarioFromJson(
      '{"base": "churn", "peers": 12, "origin": {"latencyMs": 5, "egressKbps": "unlimited"}}',
    );
    assert.equal(s.name, 'churn');
    assert.equal(s.peers, 12);
    assert.equal(s.origin.egressKbps, Infinity);
    assert.equal(s.churn.kind, 'replace');
    assert.equal(s.origin.latencyJitterMs, 0, 'fields not given come from the preset');
    // A profile lays the place's network over the preset; the file's own fields still win.
    const p = scenarioFromJson(
      '{"base": "flash-crowd", "profile": "bench-2core", "origin": {"latencyMs": 7}}',
    );
    assert.equal(p.profile, 'bench-2core');
    assert.equal(p.joinOverS, 10);
    assert.equal(p.origin.latencyMs, 7);
    assert.ok(
      p.origin.latencyJitterMs > 0 && Number.isFinite(p.origin.egressKbps),
      'the rest from the profile',
    );
    assert.ok(p.uploadKbps.kind === 'fixed' && Number.isFinite(p.uploadKbps.value));
    for (const [text, why] of [
      ['{"profile": "moon"}', /unknown profile "moon"/],
      ['{"profile": "toString"}', /unknown profile "toString"/],
      ['{"base": "constructor"}', /unknown scenario "constructor"/],
      ['{"origin": {"latencyJitterMs": -1}}', /origin: latencyMs ≥ 0, latencyJitterMs ≥ 0/],
      ['[]', /JSON object/],
      ['{"base": "nope"}', /unknown scenario/],
      ['{"peerz": 3}', /unknown field "peerz"/],
      ['{"origin": null}', /origin must be an object/],
      ['{"churn": null}', /churn must be an object/],
      ['{"rendition": "4k"}', /rendition must be auto or one of/],
      ['{"natMix": {"open": 0.5}}', /natMix shares must sum to 1/],
      ['{"uploadKbps": {"kind": "classes", "classes": []}}', /uploadKbps: classes/],
      ['{"uploadKbps": {"kind": "bands", "bands": [{"share": 1, "min": 5, "max": 1}]}}', /0 < min ≤ max/],
      ['{"name": "a b"}', /name must be/],
      ['not json', /not JSON/],
    ] as const)
      assert.throws(
        () => scenarioFromJson(text),
        (err: Error) => err instanceof ScenarioError && why.test(err.message),
        text,
      );
  });

  test('bad flags are refused in one line', async () => {
    const out = await peertv(['sim', '--peers', '0']);
    assert.equal(out.code, 2);
    assert.match(out.stderr.trim(), /^peertv sim: --peers must be from 1 to 100000/);
    const dist = await peertv(['sim', '--upload-dist', 'constructor']);
    assert.equal(dist.code, 2);
    assert.equal(dist.stderr.trim(), 'peertv sim: --upload-dist must be one of home (got "constructor")');
    const behind = await peertv(['sim', '--start-behind', '9']);
    assert.equal(behind.code, 2);
    assert.equal(behind.stderr.trim(), 'peertv sim: --start-behind must be from 0 to 5 (got 9)');
  });

  test('viewers started further behind the newest segment sit that much further behind it', async () => {
    const s = scenarioFor('steady', { peers: 4, durationS: 30, seed: 1 });
    const near = figures(await simulate(s));
    const far = figures(await simulate(s, { startBehindSegments: 2 }));
    const shift = far.latencyS.p50 - near.latencyS.p50;
    assert.ok(
      Math.abs(shift - s.segmentDurationS) < 0.3,
      `latency ${near.latencyS.p50} → ${far.latencyS.p50} s`,
    );
  });

  test('the home upload distribution: 30 % below one stream, 50 % at 1–3×, 20 % at 3–10×', () => {
    const d = uploadDistribution('home', 1000);
    const rng = new Rng(7);
    const draws = Array.from({ length: 20_000 }, () => sample(d, rng));
    const share = (lo: number, hi: number) => draws.filter((x) => x >= lo && x < hi).length / draws.length;
    assert.ok(Math.abs(share(250, 1000) - 0.3) < 0.02, `below one stream: ${share(250, 1000)}`);
    assert.ok(Math.abs(share(1000, 3000) - 0.5) < 0.02, `1–3×: ${share(1000, 3000)}`);
    assert.ok(Math.abs(share(3000, 10_000) - 0.2) < 0.02, `3–10×: ${share(3000, 10_000)}`);
    assert.equal(share(0, 250) + share(10_000, Infinity), 0, 'nothing outside the bands');
    assert.throws(() => uploadDistribution('toString', 1000), /unknown upload distribution/);
  });
});
