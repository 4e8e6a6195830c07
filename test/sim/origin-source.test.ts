/**
 * The simulator's source, origin and integrity stand-in (sim/source.ts, sim/origin.ts,
 * sim/integrity.ts), alone and under one real engine playing HTTP-only on virtual time.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  HeadlessPlayer,
  MemoryNetwork,
  MemorySegmentStore,
  PeerEngine,
  parseMediaPlaylist,
  type HttpFetcher,
} from '../../peer/index.ts';
import { averageBandwidthBps, DEFAULT_LADDER, LIGHT_LADDER } from '../../source/index.ts';
import type { Attestation } from '../../protocol/index.ts';
import { VirtualTime } from '../../sim/loop.ts';
import { Rng } from '../../sim/rng.ts';
import { simIntegrity, simPublicKey, SIM_TAG_BYTES } from '../../sim/integrity.ts';
import { SimOrigin, type SimOriginOptions, type SimOriginResponse } from '../../sim/origin.ts';
import { SimSource, type SimSourceOptions } from '../../sim/source.ts';
import { SharedPayloadStore } from '../../sim/shared-store.ts';

const ORIGIN = 'http://origin.sim';

function setup(
  seed: number,
  source: Partial<SimSourceOptions> = {},
  origin: Partial<SimOriginOptions> = {},
): { vt: VirtualTime; rng: Rng; src: SimSource; origin: SimOrigin; responses: SimOriginResponse[] } {
  const vt = new VirtualTime();
  const rng = new Rng(seed);
  const src = new SimSource(vt.clock, rng, { channel: 'live', ...source });
  const o = new SimOrigin(vt.clock, { originUrl: ORIGIN, ...origin }, rng);
  o.addChannel(src);
  const responses: SimOriginResponse[] = [];
  o.on('response', (r) => responses.push(r));
  return { vt, rng, src, origin: o, responses };
}

const segUrl = (r: string, seq: number) => `${ORIGIN}/channels/live/segments/${r}/${seq}.ts`;

/** Runs virtual time in steps until `cond` holds. */
async function until(vt: VirtualTime, cond: () => boolean, maxMs: number, what: string): Promise<void> {
  const limit = vt.nowMs + maxMs;
  while (!cond()) {
    if (vt.nowMs >= limit) throw new Error(`timed out waiting for ${what}`);
    await vt.runUntil(vt.nowMs + 50);
  }
}

/** A GET recorded with the virtual time of each progress call and of its end. */
function get(vt: VirtualTime, http: HttpFetcher, url: string, signal?: AbortSignal) {
  const g = {
    progress: [] as { at: number; n: number }[],
    status: undefined as number | undefined,
    bytes: undefined as Uint8Array | undefined,
    doneAt: undefined as number | undefined,
    error: undefined as unknown,
  };
  http.get(url, { onProgress: (n) => g.progress.push({ at: vt.nowMs, n }), ...(signal && { signal }) }).then(
    (r) => {
      g.status = r.status;
      g.bytes = r.bytes;
      g.doneAt = vt.nowMs;
    },
    (e: unknown) => (g.error = e),
  );
  return g;
}

const close = (a: number, b: number) => Math.abs(a - b) < 1e-6;

describe('SimSource', () => {
  test('publishes every rendition at the stream pace, sized by bitrate with a seeded variation', async () => {
    const { vt, src } = setup(1);
    assert.deepEqual(
      src.ladder.map((r) => r.name),
      DEFAULT_LADDER.map((r) => r.name),
    );
    const published: Attestation[][] = [];
    src.on('published', (atts) => published.push(atts));
    src.start();
    await vt.runUntil(1999);
    assert.equal(src.newest, -1, 'the first segment is complete one duration after the start');
    await vt.runUntil(2000);
    assert.equal(src.newest, 0);
    await vt.runUntil(400_000);
    assert.equal(src.newest, 199);
    assert.equal(published.length, 200);
    for (const atts of published)
      assert.deepEqual(
        atts.map((a) => a.rendition),
        ['720p', '480p', '360p'],
      );
    // Sizes: bitrate × duration × a log-normal factor of mean 1, sd ≈ 12 %, the same for every rendition.
    for (const r of DEFAULT_LADDER) {
      const nominal = (averageBandwidthBps(r, true) * 2) / 8;
      const f = published.map((atts) => atts.find((a) => a.rendition === r.name)!.byteLength / nominal);
      const mean = f.reduce((s, x) => s + x, 0) / f.length;
      const sd = Math.sqrt(f.reduce((s, x) => s + (x - mean) ** 2, 0) / f.length);
      assert.ok(Math.abs(mean - 1) < 0.03, `${r.name}: mean factor ${mean}`);
      assert.ok(sd > 0.09 && sd < 0.15, `${r.name}: sd ${sd}`);
    }
    const ratio = published.map((atts) => atts[0]!.byteLength / atts[2]!.byteLength);
    assert.ok(Math.max(...ratio) - Math.min(...ratio) < 0.001, 'one factor per segment for every rendition');
    // Records: media sequence, 2 s durations, publish times on the virtual wall clock, a hash chain.
    const [a, b] = [published[10]![1]!, published[11]![1]!];
    assert.equal(a.mediaSequence, 10);
    assert.equal(a.durationMs, 2000);
    assert.equal(b.publishedAtMs - a.publishedAtMs, 2000);
    assert.equal(published[0]![0]!.prevHash, '0'.repeat(64));
    assert.notEqual(b.prevHash, a.prevHash);
    // Retention: older segments are forgotten.
    assert.equal(src.segment('480p', 199 - 30), undefined);
    assert.ok(src.segment('480p', 199 - 29));
    src.destroy();
  });

  test('the light ladder, byteScale, the sliding window and the end', async () => {
    const full = setup(7, { ladder: 'light' });
    const scaled = setup(7, { ladder: 'light', byteScale: 1 / 16, endAfterSegments: 10 });
    assert.deepEqual(full.src.ladder, LIGHT_LADDER);
    full.src.start();
    scaled.src.start();
    await full.vt.runUntil(30_000);
    await scaled.vt.runUntil(30_000);
    for (let seq = 0; seq < 10; seq++) {
      const big = full.src.segment('480p', seq)!;
      const small = scaled.src.segment('480p', seq)!;
      assert.ok(Math.abs(small.attestation.byteLength - big.attestation.byteLength / 16) <= 0.5);
      assert.equal(
        small.payload.byteLength,
        small.attestation.byteLength,
        'the record says the scaled length',
      );
    }
    assert.equal(scaled.src.newest, 9, 'ended after 10 segments');
    assert.equal(scaled.src.status, 'ended');
    const text = new TextDecoder().decode(
      scaled.src.mediaPlaylist('240p', (r, s) => `../segments/${r}/${s}.ts`),
    );
    const parsed = parseMediaPlaylist(text, `${ORIGIN}/channels/live/live/240p.m3u8`);
    assert.deepEqual(
      parsed.segments.map((s) => s.mediaSequence),
      [4, 5, 6, 7, 8, 9],
      'a window of 6 segments',
    );
    assert.equal(parsed.ended, true, 'EXT-X-ENDLIST');
    full.src.destroy();
  });

  test('simIntegrity accepts what the source wrote and refuses forgeries, resolving at once', async () => {
    const { vt, src } = setup(3);
    src.start();
    await vt.runUntil(6000);
    const seg = src.segment('360p', 1)!;
    const verifier = await simIntegrity.importKey(src.publicKey);
    let settled = false;
    void verifier.verify(seg.attestation).then(() => (settled = true));
    await Promise.resolve();
    assert.equal(settled, true, 'no waiting on anything off the event loop');
    assert.deepEqual(await verifier.verify(seg.attestation), { ok: true });
    const code = async (p: Promise<{ ok: boolean; code?: string }>) => {
      const c = await p;
      return c.ok ? 'ok' : c.code;
    };
    const att = seg.attestation;
    assert.equal(
      await code(verifier.verify({ ...att, byteLength: att.byteLength + 1 })),
      'attestation-signature-invalid',
    );
    assert.equal(await code(verifier.verify({ ...att, mediaSequence: 2 })), 'attestation-signature-invalid');
    const other = await simIntegrity.importKey(simPublicKey('another'));
    assert.equal(await code(other.verify(att)), 'attestation-signature-invalid', 'signed for another key');
    await assert.rejects(simIntegrity.importKey('short'));
    assert.equal(await code(simIntegrity.checkBytes(att, seg.payload)), 'ok');
    const tampered = seg.payload.slice();
    tampered[SIM_TAG_BYTES - 1] = tampered[SIM_TAG_BYTES - 1]! ^ 1;
    assert.equal(await code(simIntegrity.checkBytes(att, tampered)), 'segment-hash-mismatch');
    assert.equal(
      await code(simIntegrity.checkBytes(att, seg.payload.subarray(1))),
      'segment-length-mismatch',
    );
    const next = src.segment('360p', 2)!;
    assert.equal(
      await code(simIntegrity.checkBytes(next.attestation, seg.payload.subarray(0, next.payload.byteLength))),
      next.payload.byteLength <= seg.payload.byteLength ? 'segment-hash-mismatch' : 'segment-length-mismatch',
      'another segment’s bytes',
    );
    src.destroy();
  });

  test("SharedPayloadStore keeps the source's own buffer for equal bytes, and anything else as given", async () => {
    const { vt, src } = setup(5);
    src.start();
    await vt.runUntil(6000);
    const store = new SharedPayloadStore(src, { capacityBytes: 1 << 20 });
    const seg = src.segment('360p', 1)!;
    assert.equal(store.put('360p', 1, seg.payload.slice(), seg.attestation), true);
    assert.equal(
      store.get('360p', 1)!.bytes,
      seg.payload,
      'a copy received from a peer: the source’s buffer kept',
    );
    const other = src.segment('360p', 2)!;
    const poisoned = other.payload.slice();
    poisoned[poisoned.length - 1] = 1; // beyond the tag: simIntegrity lets it through
    store.put('360p', 2, poisoned, other.attestation);
    assert.equal(store.get('360p', 2)!.bytes, poisoned, 'different bytes are not replaced');
    assert.equal(store.bytesUsed, seg.payload.byteLength + poisoned.byteLength, 'lengths counted as before');
    src.destroy();
  });
});

describe('SimOrigin', () => {
  test('a body of B bytes alone takes latency + B / C; bodies at once share C equally', async () => {
    const C = 1_024_000; // bytes per second: 64 KiB chunks take 64 ms
    const L = 40;
    const { vt, src, origin } = setup(
      2,
      { ladder: 'light', sizeSigma: 0 },
      { latencyMs: L, egressBytesPerS: C },
    );
    src.start();
    await vt.runUntil(6000);
    const big = src.segment('480p', 0)!;
    const small = src.segment('240p', 0)!;
    const B = big.payload.byteLength;
    const S = small.payload.byteLength;

    // Alone.
    let t0 = vt.nowMs;
    const one = get(vt, origin, segUrl('480p', 0));
    await until(vt, () => one.doneAt !== undefined, 10_000, 'one');
    assert.equal(one.status, 200);
    assert.ok(close(one.doneAt! - t0, L + (B / C) * 1000), `took ${one.doneAt! - t0}`);
    assert.equal(one.bytes, big.payload, 'the source’s buffer itself, not a copy');
    assert.equal(
      one.progress.reduce((n, p) => n + p.n, 0),
      B,
    );
    assert.ok(close(one.progress[0]!.at - t0, L + 64), 'the first chunk after the latency');

    // Two at once: equal shares until the smaller one is done, then the rest for the bigger one.
    t0 = vt.nowMs;
    const a = get(vt, origin, segUrl('480p', 1));
    const b = get(vt, origin, segUrl('240p', 1));
    await until(vt, () => a.doneAt !== undefined && b.doneAt !== undefined, 10_000, 'two');
    const S1 = src.segment('240p', 1)!.payload.byteLength;
    const B1 = src.segment('480p', 1)!.payload.byteLength;
    assert.equal(S1, S);
    assert.ok(close(b.doneAt! - t0, L + ((2 * S1) / C) * 1000), `small took ${b.doneAt! - t0}`);
    assert.ok(close(a.doneAt! - t0, L + ((S1 + B1) / C) * 1000), `big took ${a.doneAt! - t0}`);

    // An abort midway: rejects with the signal's reason, counts what was sent, frees its share.
    t0 = vt.nowMs;
    const ac = new AbortController();
    const c = get(vt, origin, segUrl('480p', 2), ac.signal);
    const d = get(vt, origin, segUrl('480p', 2));
    await vt.runUntil(t0 + L + 100);
    ac.abort(new Error('not wanted'));
    await until(vt, () => d.doneAt !== undefined, 10_000, 'd');
    assert.equal((c.error as Error).message, 'not wanted');
    // 100 ms at C/2 each, then d alone.
    const sentToC = Math.floor((0.1 * C) / 2);
    assert.ok(close(d.doneAt! - t0, L + 100 + ((B - (0.1 * C) / 2) / C) * 1000), `d took ${d.doneAt! - t0}`);
    const seg = origin.counters().live!.segment;
    assert.deepEqual(seg, { requests: 5, bytes: B + B1 + S1 + B + sentToC });
    assert.equal(origin.inFlight, 0);
    src.destroy();
  });

  test('the URL layout: channel.json, playlists, segments, records; 404s are not counted', async () => {
    const { vt, src, origin } = setup(4, { ladder: 'light' });
    const text = async (url: string) => {
      const g = get(vt, origin, url);
      await until(vt, () => g.doneAt !== undefined, 5000, url);
      return { status: g.status!, text: new TextDecoder().decode(g.bytes) };
    };
    const offline = JSON.parse((await text(`${ORIGIN}/channels/live/channel.json`)).text) as {
      live: unknown;
    };
    assert.equal(offline.live, null, 'not broadcasting yet');
    assert.equal((await text(`${ORIGIN}/channels/live/live/master.m3u8`)).status, 404);
    src.start();
    assert.equal((await text(`${ORIGIN}/channels/live/live/240p.m3u8`)).status, 404, 'no segment yet');
    await vt.runUntil(20_000);
    const info = JSON.parse((await text(`${ORIGIN}/channels/live/channel.json`)).text) as {
      publicKey: string;
      live: { master: string };
      status: string;
    };
    assert.equal(info.publicKey, src.publicKey);
    assert.equal(info.status, 'live');
    assert.equal(info.live.master, `${ORIGIN}/channels/live/live/master.m3u8`);
    const master = await text(info.live.master);
    assert.match(master.text, /^#EXTM3U/);
    assert.match(master.text, /\n480p\.m3u8\n/);
    const media = await text(`${ORIGIN}/channels/live/live/480p.m3u8`);
    assert.match(media.text, /\n\.\.\/segments\/480p\/9\.ts\n/);
    const record = JSON.parse(
      (await text(`${ORIGIN}/channels/live/segments/480p/9.json`)).text,
    ) as Attestation;
    assert.deepEqual(record, src.segment('480p', 9)!.attestation);
    const run = JSON.parse((await text(`${ORIGIN}/channels/live/attestations/240p?from=7&limit=2`)).text) as {
      attestations: Attestation[];
    };
    assert.deepEqual(
      run.attestations.map((a) => a.mediaSequence),
      [7, 8],
    );
    const before = origin.counters().live!;
    for (const url of [
      `${ORIGIN}/channels/live/segments/480p/99.ts`,
      `${ORIGIN}/channels/live/segments/1080p/1.ts`,
      `${ORIGIN}/channels/live/live/1080p.m3u8`,
      `${ORIGIN}/channels/other/channel.json`,
      `${ORIGIN}/channels/live/recordings/x/master.m3u8`,
      `${ORIGIN}/elsewhere`,
    ])
      assert.equal((await text(url)).status, 404, url);
    assert.deepEqual(origin.counters().live, before, 'errors are not counted');
    assert.equal(before.metadata.requests, 2);
    assert.equal(before.playlist.requests, 2);
    assert.equal(before.attestation.requests, 2);
    src.destroy();
  });
});

interface Run {
  counters: ReturnType<SimOrigin['counters']>;
  responses: SimOriginResponse[];
  loads: { seq: number; at: number; bytes: number; source: string }[];
  httpBytes: number;
  stalls: number;
  state: string;
  sharedBuffers: boolean;
}

/** One real engine, HTTP only, with a HeadlessPlayer, playing the sim source through the sim origin. */
async function playAlone(seed: number, origin: Partial<SimOriginOptions>): Promise<Run> {
  const { vt, rng, src, origin: o, responses } = setup(seed, { ladder: 'light', byteScale: 1 / 4 }, origin);
  src.start();
  await vt.runUntil(7000);
  const store = new MemorySegmentStore();
  const engineRng = rng.fork('engine');
  const engine = new PeerEngine(
    { channel: 'live', originUrl: ORIGIN, p2p: false, rendition: '480p' },
    {
      clock: vt.clock,
      transport: new MemoryNetwork(vt.clock).transport('viewer'),
      http: o,
      tracker: undefined,
      store,
      integrity: simIntegrity,
      random: () => engineRng.next(),
    },
  );
  const player = new HeadlessPlayer(engine);
  const loads: Run['loads'] = [];
  engine.on('segment-loaded', (e) =>
    loads.push({ seq: e.mediaSequence, at: vt.nowMs, bytes: e.bytes, source: e.source }),
  );
  const started = engine.start();
  await vt.runUntil(60_000);
  await started;
  const sharedBuffers = store
    .held('480p')
    .every((seq) => store.get('480p', seq)!.bytes === src.segment('480p', seq)!.payload);
  const run: Run = {
    counters: o.counters(),
    responses,
    loads,
    httpBytes: engine.httpBytes,
    stalls: player.stalls,
    state: player.state,
    sharedBuffers,
  };
  player.destroy();
  engine.destroy();
  src.destroy();
  return run;
}

describe('one real engine on the sim origin, HTTP only, virtual time', () => {
  const C = 200_000;
  const L = 30;

  test('plays in order without stalls; the origin counted exactly the engine’s HTTP bytes', async () => {
    const run = await playAlone(11, { latencyMs: L, egressBytesPerS: C });
    assert.equal(run.state, 'playing');
    assert.equal(run.stalls, 0);
    assert.ok(run.loads.length >= 20, `${run.loads.length} segments loaded`);
    assert.ok(run.loads.every((l) => l.source === 'http'));
    const seqs = run.loads.map((l) => l.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
      'in order',
    );
    assert.deepEqual(
      seqs,
      Array.from({ length: seqs.length }, (_, i) => seqs[0]! + i),
      'none skipped',
    );
    // Conservation: every segment byte the origin sent is a byte the engine counted as HTTP.
    const c = run.counters.live!;
    assert.equal(c.segment.bytes, run.httpBytes);
    assert.equal(c.segment.requests, run.loads.length);
    assert.equal(c.metadata.requests, 1, 'channel.json once');
    assert.ok(c.playlist.requests >= 20 && c.attestation.requests >= run.loads.length);
    assert.ok(run.sharedBuffers, 'the store keeps the origin’s buffers by reference (no copy)');
    // Timing: a segment response alone on the origin took exactly latency + B / C.
    const segments = run.responses.filter((r) => r.kind === 'segment');
    const alone = segments.filter(
      (s) => !run.responses.some((o) => o !== s && o.endedAt > s.firstByteAt! && o.firstByteAt! < s.endedAt),
    );
    assert.ok(alone.length >= segments.length / 2, `${alone.length} of ${segments.length} alone`);
    for (const s of alone)
      assert.ok(
        close(s.endedAt - s.requestedAt, L + (s.bytes / C) * 1000),
        `${s.url}: ${s.endedAt - s.requestedAt}`,
      );
    for (const s of segments) assert.ok(s.endedAt - s.requestedAt >= L + (s.bytes / C) * 1000 - 1e-6);
  });

  test('the same seed gives identical counters and timings; another seed does not', async () => {
    const opts = { latencyMs: L, latencyJitterMs: 20, egressBytesPerS: C };
    const [a, b, other] = [await playAlone(5, opts), await playAlone(5, opts), await playAlone(6, opts)];
    assert.deepEqual(a.counters, b.counters);
    assert.deepEqual(a.responses, b.responses);
    assert.deepEqual(a.loads, b.loads);
    assert.notDeepEqual(a.responses, other.responses);
  });

  test('the engine with simIntegrity refuses tampered bytes and forged records', async () => {
    const { vt, src, origin } = setup(9, { ladder: 'light' }, { latencyMs: L });
    // A man in the middle: flips a tag byte of segment 4, forges the record of segment 5.
    const mitm: HttpFetcher = {
      async get(url, opts) {
        const res = await origin.get(url, opts);
        if (url.endsWith('/480p/4.ts')) {
          const bytes = res.bytes.slice();
          bytes[0] = bytes[0]! ^ 0xff;
          return { status: res.status, bytes };
        }
        if (url.endsWith('/480p/5.json')) {
          const att = JSON.parse(new TextDecoder().decode(res.bytes)) as Attestation;
          return { status: 200, bytes: new TextEncoder().encode(JSON.stringify({ ...att, durationMs: 1 })) };
        }
        return res;
      },
    };
    src.start();
    await vt.runUntil(14_000);
    const store = new MemorySegmentStore();
    const engine = new PeerEngine(
      { channel: 'live', originUrl: ORIGIN, p2p: false, rendition: '480p' },
      {
        clock: vt.clock,
        transport: new MemoryNetwork(vt.clock).transport('viewer'),
        http: mitm,
        tracker: undefined,
        store,
        integrity: simIntegrity,
      },
    );
    const rejected: { seq: number; reason: string }[] = [];
    engine.on('segment-rejected', (e) => rejected.push({ seq: e.mediaSequence, reason: e.reason }));
    const started = engine.start();
    await vt.runUntil(15_000);
    await started;
    const due = vt.nowMs + 60_000;
    for (const seq of [3, 4, 5]) void engine.load('480p', seq, due).catch(() => {});
    await vt.runUntil(18_000);
    assert.ok(store.has('480p', 3), 'an honest segment is stored');
    assert.ok(!store.has('480p', 4) && !store.has('480p', 5), 'neither tampered one is');
    assert.ok(rejected.some((r) => r.seq === 4 && r.reason === 'segment-hash-mismatch'));
    assert.ok(rejected.some((r) => r.seq === 5 && r.reason === 'attestation-signature-invalid'));
    engine.destroy();
    src.destroy();
  });
});
