/** The tracker against a real source channel (tiny ffmpeg test pattern), with socket.io clients as peers. */
import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  importChannelKey,
  verifyAttestationSignature,
  verifyChain,
  verifySegment,
  TRACKER_PROTOCOL_VERSION,
  type Attestation,
  type ChannelInfo,
  type ChannelRegistration,
  type ChannelStats,
  type DirectoryUpdate,
  type JoinResult,
  type NatType,
  type UnsignedRegistration,
  type NeighboursUpdate,
  type PeerReport,
  type SignalData,
} from '../../protocol/index.ts';
import { Tracker, type TrackerOptions } from '../../tracker/index.ts';
import { ChannelSigner, TrackerLink, type Origin, type SourceChannel } from '../../source/index.ts';
import { liveOrigin, tempDir, tinyChannel, waitFor } from '../helpers/source.ts';
import { Client, clients, connect, emptyReport, ok, until } from '../helpers/tracker-clients.ts';

const ICE = [
  { urls: 'stun:127.0.0.1:3478' },
  { urls: ['turn:127.0.0.1:3478'], username: 'u', credential: 'p' },
];

// ---------------------------------------------------------------- clients

async function joinAs(
  url: string,
  rendition: string,
  extra: { kind?: 'node' | 'browser'; mode?: 'viewer' | 'relay'; channel?: string; natType?: NatType } = {},
): Promise<Client> {
  const c = await connect(url);
  const res = ok(
    await c.ask<JoinResult>('join', {
      protocolVersion: TRACKER_PROTOCOL_VERSION,
      channel: extra.channel ?? 'tv',
      kind: extra.kind ?? 'node',
      mode: extra.mode ?? 'viewer',
      rendition,
      uploadKbps: 2000,
      natType: extra.natType ?? 'open',
    }),
  );
  c.peerId = res.peerId;
  c.join = res;
  return c;
}

const peerReport = (over: Partial<PeerReport> = {}): PeerReport =>
  emptyReport({ bufferS: 3, held: { first: 1, last: 4 }, uploadKbps: 500, downloadKbps: 800, ...over });

/** A round trip on `c`: everything the tracker sent it before is then in its log. */
async function sync(c: Client, rendition = c.join?.channel.renditions[0]?.name ?? '180p'): Promise<void> {
  ok(await c.ask('report', peerReport({ rendition })));
}

async function close(...cs: Client[]): Promise<void> {
  for (const c of cs) c.socket.disconnect();
}

async function getJson<T>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as T };
}

/** Value of a Prometheus sample whose labels include `labels` (undefined when absent). */
function metric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

async function metricsOf(t: Tracker): Promise<string> {
  const res = await fetch(`${t.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /^text\/plain/);
  return res.text();
}

// ---------------------------------------------------------------- fixture

describe('tracker with a real source channel', () => {
  const dataDir = tempDir('peertv-tracker-test-');
  let channel: SourceChannel;
  let origin: Origin;
  let base: string;
  const trackers: Tracker[] = [];
  const links: TrackerLink[] = [];
  let tracker: Tracker;
  let link: TrackerLink;

  async function startTracker(opts: Partial<TrackerOptions>): Promise<Tracker> {
    const t = new Tracker({ iceServers: ICE, rebalanceIntervalMs: 60_000, ...opts });
    trackers.push(t);
    await t.listen(0);
    return t;
  }

  /** The source's registration with fields changed, signed anew with the channel's key. */
  function resigned(over: Partial<UnsignedRegistration>): ChannelRegistration {
    const { signature: _s, ...current } = link.registration();
    return channel.store.signer.signRegistration({ ...current, ...over });
  }

  async function linkTo(t: Tracker): Promise<TrackerLink> {
    const l = new TrackerLink({ trackerUrl: t.url, channel, origin, countersIntervalMs: 200 });
    links.push(l);
    return l;
  }

  /** Leaves the tracker's channel empty for the next test. */
  async function cleanup(t: Tracker, ...cs: Client[]): Promise<void> {
    await close(...cs);
    await until('peers gone', async () => (await t.store.countPeers('tv')) === 0);
  }

  before(async () => {
    channel = tinyChannel({ id: 'tv', dataDir });
    ({ origin, base } = await liveOrigin(channel));
    tracker = await startTracker({
      statsIntervalMs: 200,
      reportIntervalMs: 1000,
      peerTimeoutMs: 60_000,
    });
    link = await linkTo(tracker);
    await waitFor(link, 'registered', 10_000);
  });

  // A failing test must not leave peers behind for the next one.
  afterEach(async () => {
    for (const c of clients) c.socket.disconnect();
    await until('no peer left', async () => (await tracker.store.countPeers('tv')) === 0);
  });

  after(async () => {
    for (const c of clients) c.socket.disconnect();
    for (const l of links) l.destroy();
    for (const t of trackers) await t.destroy();
    await channel?.destroy();
    await origin?.destroy();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('directory over REST: list, one channel, unknown ids', async () => {
    const list = await getJson<ChannelInfo[]>(`${tracker.url}/api/channels`);
    assert.equal(list.status, 200);
    assert.equal(list.body.length, 1);
    const info = list.body[0]!;
    assert.equal(info.id, 'tv');
    assert.equal(info.title, channel.settings.title);
    assert.equal(info.status, 'live');
    assert.equal(info.originUrl, origin.publicUrl);
    assert.equal(info.publicKey, channel.store.signer.publicKey);
    assert.equal(info.segmentDurationS, 1);
    assert.deepEqual(
      info.renditions.map((r) => [r.name, r.width, r.height]),
      [
        ['180p', 320, 180],
        ['90p', 160, 90],
      ],
    );
    for (const r of info.renditions) assert.ok(r.bandwidthBps > 0);
    assert.equal(info.livePlaylist, '/channels/tv/live/master.m3u8');
    assert.equal(info.viewers, 0);
    assert.equal(info.offload, null);
    // The playlist the directory points at is served by the origin.
    const master = await fetch(`${info.originUrl}${info.livePlaylist}`);
    assert.equal(master.status, 200);
    assert.match(await master.text(), /#EXTM3U/);

    const one = await getJson<ChannelInfo>(`${tracker.url}/api/channels/tv`);
    assert.equal(one.status, 200);
    assert.deepEqual(one.body, info);

    for (const id of ['nope', 'NOT%20valid', 'a'.repeat(80)]) {
      const res = await getJson<{ ok: boolean; error: { code: string } }>(
        `${tracker.url}/api/channels/${id}`,
      );
      assert.equal(res.status, 404, id);
      assert.deepEqual([res.body.ok, res.body.error.code], [false, 'unknown-channel']);
      const stats = await fetch(`${tracker.url}/api/channels/${id}/stats`);
      assert.equal(stats.status, 404);
      await stats.body?.cancel();
    }
  });

  test('directory over socket.io: watch, then directory and channel events on changes', async () => {
    const watcher = await connect(tracker.url);
    const res = ok(await watcher.ask<{ channels: ChannelInfo[] }>('watch', {}));
    assert.deepEqual(
      res.channels.map((c) => [c.id, c.status]),
      [['tv', 'live']],
    );
    const viewer = await joinAs(tracker.url, '90p');
    const put = await fetch(`${tracker.url}/api/channels/tv`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(resigned({ title: 'Watched title' })),
    });
    assert.equal(put.status, 200);
    assert.deepEqual(await put.json(), { ok: true });
    const dir = await watcher.waitFor<DirectoryUpdate>(
      'directory-update',
      (d) => d.upsert[0]?.title === 'Watched title',
    );
    assert.equal(dir.upsert.length, 1, 'only the entry that changed');
    assert.deepEqual(dir.remove, []);
    assert.equal(dir.upsert[0]!.viewers, 1);
    const ch = await viewer.waitFor<ChannelInfo>('channel');
    assert.equal(ch.title, 'Watched title', 'joined peers get the channel update');
    assert.equal(viewer.seen('directory-update').length, 0, 'peers that did not watch get no directory');
    assert.equal((await getJson<ChannelInfo>(`${tracker.url}/api/channels/tv`)).body.title, 'Watched title');
    // The source re-registering puts its own title back.
    const back = await fetch(`${tracker.url}/api/channels/tv`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(link.registration()),
    });
    assert.equal(back.status, 200);
    await watcher.waitFor<DirectoryUpdate>(
      'directory-update',
      (d) => d.upsert[0]?.title === channel.settings.title,
    );
    await cleanup(tracker, watcher, viewer);
  });

  test('join: peer id, ICE servers, channel, first tier for the first peer of a rendition', async () => {
    const a = await joinAs(tracker.url, '180p');
    const j = a.join!;
    assert.match(j.peerId, /^[A-Za-z0-9_-]{16}$/);
    assert.deepEqual(j.iceServers, ICE);
    assert.equal(j.channel.id, 'tv');
    assert.equal(j.channel.publicKey, channel.store.signer.publicKey);
    assert.equal(j.channel.viewers, 1);
    assert.deepEqual(j.neighbours, []);
    assert.equal(j.firstTier, true);
    assert.equal(j.reportIntervalMs, 1000);
    assert.equal((await getJson<ChannelInfo>(`${tracker.url}/api/channels/tv`)).body.viewers, 1);
    const b = await joinAs(tracker.url, '180p');
    assert.notEqual(b.peerId, a.peerId);
    assert.equal(b.join!.firstTier, false, 'the rendition already has its first-tier peer');
    const c = await joinAs(tracker.url, '90p');
    assert.equal(c.join!.firstTier, true, 'first peer of 90p');
    assert.deepEqual(c.join!.neighbours, [], 'no neighbour of another rendition');
    assert.equal(c.join!.channel.viewers, 3);
    await cleanup(tracker, a, b, c);
    assert.equal((await getJson<ChannelInfo>(`${tracker.url}/api/channels/tv`)).body.viewers, 0);
  });

  test('NAT probe: the addresses reach joining peers, and a type learned later is taken once', async () => {
    const probe = ['stun:127.0.0.1:3478', 'stun:127.0.0.2:3479'];
    assert.throws(() => new Tracker({ natProbe: [probe[0]!] }), /natProbe is two stun: URLs/);
    const t = await startTracker({ natProbe: probe, reportIntervalMs: 1000, peerTimeoutMs: 60_000 });
    await waitFor(await linkTo(t), 'registered', 10_000);
    const plain = await joinAs(tracker.url, '180p');
    assert.equal(plain.join!.natProbe, undefined, 'a tracker without probe addresses sends none');
    const a = await joinAs(t.url, '180p', { kind: 'browser', natType: 'unknown' });
    assert.deepEqual(a.join!.natProbe, probe);
    const natOf = async () => (await t.store.getPeer(a.peerId!))?.natType;
    assert.equal(await natOf(), 'unknown');
    ok(await a.ask('report', peerReport({ natType: 'symmetric' })));
    assert.equal(await natOf(), 'symmetric');
    ok(await a.ask('report', peerReport({ natType: 'open' })));
    assert.equal(await natOf(), 'symmetric', 'not changed once known');
    const bad = await a.ask('report', { ...peerReport(), natType: 'wormhole' } as unknown as PeerReport);
    assert.equal(bad.ok, false);
    assert.equal(await natOf(), 'symmetric');
    const overlay = (await t.stats.overlay('tv')).peers.find((p) => p.id === a.peerId);
    assert.equal(overlay?.natType, 'symmetric', 'the dashboard shows it');
    await close(plain);
    await cleanup(t, a);
  });

  test('recommendations: later peers get the earlier ones, earlier ones get `add`', async () => {
    const a = await joinAs(tracker.url, '180p');
    const b = await joinAs(tracker.url, '180p');
    assert.deepEqual(b.join!.neighbours, [a.peerId]);
    assert.deepEqual(await a.waitFor<NeighboursUpdate>('neighbours', (u) => u.add.length > 0), {
      add: [b.peerId],
      remove: [],
      firstTier: true,
    });
    const c = await joinAs(tracker.url, '180p');
    assert.deepEqual([...c.join!.neighbours].sort(), [a.peerId, b.peerId].sort());
    assert.deepEqual(await b.waitFor<NeighboursUpdate>('neighbours', (u) => u.add.includes(c.peerId)), {
      add: [c.peerId],
      remove: [],
      firstTier: false,
    });
    await a.waitFor<NeighboursUpdate>('neighbours', (u) => u.add.includes(c.peerId));
    // A peer of the other rendition is introduced to nobody.
    const d = await joinAs(tracker.url, '90p');
    assert.deepEqual(d.join!.neighbours, []);
    await Promise.all([sync(a), sync(b), sync(c)]);
    for (const x of [a, b, c])
      assert.equal(x.seen<NeighboursUpdate>('neighbours', (u) => u.add.includes(d.peerId)).length, 0);
    // The tracker's links match what it told the peers.
    assert.deepEqual((await tracker.store.linksOf(a.peerId)).sort(), [b.peerId, c.peerId].sort());
    assert.deepEqual(await tracker.store.linksOf(d.peerId), []);
    await cleanup(tracker, a, b, c, d);
  });

  test("attestations from the real source reach that rendition's peers and verify", async () => {
    const hi = await joinAs(tracker.url, '180p');
    const lo = await joinAs(tracker.url, '90p');
    const key = await importChannelKey(hi.join!.channel.publicKey);
    const first = await hi.waitFor<Attestation>('attestation', () => true, 15_000);
    const second = await hi.waitFor<Attestation>(
      'attestation',
      (a) => a.mediaSequence > first.mediaSequence,
      15_000,
    );
    for (const att of [first, second]) {
      assert.equal(att.channel, 'tv');
      assert.equal(att.rendition, '180p');
      assert.deepEqual(await verifyAttestationSignature(att, key), { ok: true });
    }
    assert.deepEqual(await verifyChain([first, second], key), { ok: true });
    // It describes the bytes the origin serves.
    const res = await fetch(`${base}/segments/180p/${second.mediaSequence}.ts`);
    assert.equal(res.status, 200);
    const bytes = new Uint8Array(await res.arrayBuffer());
    assert.deepEqual(
      await verifySegment(
        second,
        key,
        { channel: 'tv', rendition: '180p', mediaSequence: second.mediaSequence },
        bytes,
      ),
      { ok: true },
    );
    // A tampered record does not verify with the channel key.
    assert.equal(
      (await verifyAttestationSignature({ ...second, byteLength: second.byteLength + 1 }, key)).ok,
      false,
    );

    const low = await lo.waitFor<Attestation>('attestation', () => true, 15_000);
    assert.equal(low.rendition, '90p');
    assert.deepEqual(await verifyAttestationSignature(low, key), { ok: true });
    await Promise.all([sync(hi), sync(lo, '90p')]);
    assert.deepEqual(
      [...new Set(hi.seen<Attestation>('attestation').map((a) => a.rendition))],
      ['180p'],
      'only the rendition joined',
    );
    assert.deepEqual([...new Set(lo.seen<Attestation>('attestation').map((a) => a.rendition))], ['90p']);
    await cleanup(tracker, hi, lo);
  });

  test('signaling relay between introduced peers', async () => {
    const a = await joinAs(tracker.url, '180p');
    const b = await joinAs(tracker.url, '180p');
    const offer: SignalData = { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' };
    const answer: SignalData = { type: 'answer', sdp: 'v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\n' };
    const candidate: SignalData = {
      type: 'candidate',
      candidate: {
        candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host',
        sdpMid: '0',
        sdpMLineIndex: 0,
      },
    };
    ok(await a.ask('signal', { to: b.peerId, data: offer }));
    assert.deepEqual(await b.waitFor('signal'), { from: a.peerId, data: offer });
    ok(await b.ask('signal', { to: a.peerId, data: answer }));
    assert.deepEqual(await a.waitFor('signal'), { from: b.peerId, data: answer });
    ok(await a.ask('signal', { to: b.peerId, data: candidate }));
    await b.waitFor<{ from: string; data: SignalData }>(
      'signal',
      (s) => 'type' in s.data && s.data.type === 'candidate',
    );
    ok(await b.ask('signal', { to: a.peerId, data: { renegotiate: true } }));
    assert.deepEqual(await a.waitFor('signal', (s: { data: object }) => 'renegotiate' in s.data), {
      from: b.peerId,
      data: { renegotiate: true },
    });
    assert.equal(b.seen('signal').length, 2);
    assert.equal(a.seen('signal').length, 2);
    await cleanup(tracker, a, b);
  });

  test('reports show up in stats (viewers, bytes, flows, overlay) and in /metrics', async () => {
    const departed = await tracker.store.departed('tv');
    const m0 = await metricsOf(tracker);
    const joins0 = metric(m0, 'peertv_tracker_joins_total', { channel: 'tv' }) ?? 0;
    const signals0 = metric(m0, 'peertv_tracker_signals_relayed_total') ?? 0;

    const a = await joinAs(tracker.url, '180p');
    const b = await joinAs(tracker.url, '180p');
    const r = await joinAs(tracker.url, '90p', { kind: 'browser', mode: 'relay' });
    ok(await a.ask('signal', { to: b.peerId, data: { type: 'offer', sdp: 'x' } }));
    ok(await a.ask('report', peerReport({ httpBytes: 10_000, uploadedBytes: 4000, neighbours: [b.peerId] })));
    ok(
      await b.ask(
        'report',
        peerReport({
          httpBytes: 1000,
          p2pBytes: 4000,
          neighbours: [a.peerId],
          receivedFrom: { [a.peerId]: 4000 },
          rttMs: { [a.peerId]: 3 },
        }),
      ),
    );
    ok(await r.ask('report', peerReport({ rendition: '90p', httpBytes: 500 })));
    const http = departed.httpBytes + 11_500;
    const p2p = departed.p2pBytes + 4000;

    const statsUrl = `${tracker.url}/api/channels/tv/stats`;
    const stats = await until('a stats sample with the reports and the a→b flow', async () => {
      const s = (await getJson<ChannelStats>(statsUrl)).body;
      return s.current.httpBytes === http && s.overlay.flows.length > 0 ? s : undefined;
    });
    assert.equal(stats.channel, 'tv');
    assert.equal(stats.current.viewers, 2, 'the relay is not a viewer');
    assert.equal(stats.current.p2pBytes, p2p);
    assert.equal(stats.current.downloadKbps, 2400);
    assert.ok(stats.history.length >= 2, 'history of samples');
    assert.deepEqual(stats.overlay.flows, [{ from: a.peerId, to: b.peerId, bytes: 4000 }]);
    assert.deepEqual(stats.overlay.links, [[a.peerId, b.peerId].sort()]);
    const byId = new Map(stats.overlay.peers.map((p) => [p.id, p]));
    assert.equal(byId.size, 3);
    assert.equal(byId.get(a.peerId)!.firstTier, true);
    assert.equal(byId.get(b.peerId)!.firstTier, false);
    assert.equal(byId.get(r.peerId)!.mode, 'relay');
    assert.equal(byId.get(r.peerId)!.kind, 'browser');
    assert.equal(byId.get(b.peerId)!.bufferS, 3);

    const m = await metricsOf(tracker);
    assert.equal(metric(m, 'peertv_tracker_peers', { channel: 'tv', kind: 'node' }), 2);
    assert.equal(metric(m, 'peertv_tracker_peers', { channel: 'tv', kind: 'browser' }), 1);
    assert.equal(metric(m, 'peertv_channel_viewers', { channel: 'tv' }), 2);
    assert.equal(metric(m, 'peertv_tracker_joins_total', { channel: 'tv' }), joins0 + 3);
    assert.equal(metric(m, 'peertv_tracker_signals_relayed_total'), signals0 + 1);
    assert.equal(metric(m, 'peertv_channel_bytes', { channel: 'tv', source: 'p2p' }), p2p);
    assert.equal(metric(m, 'peertv_channel_bytes', { channel: 'tv', source: 'http' }), http);
    assert.ok(metric(m, 'peertv_tracker_sockets')! >= 4, 'three peers and the source');

    // Flows: what b got from a since its previous report (receivedFrom is cumulative).
    const flowsNow = async () => (await getJson<ChannelStats>(statsUrl)).body.overlay.flows;
    const bReport = (fromA: number) =>
      peerReport({
        httpBytes: 1000,
        p2pBytes: 4000,
        neighbours: [a.peerId],
        receivedFrom: { [a.peerId]: fromA },
      });
    ok(await b.ask('report', bReport(5500)));
    assert.deepEqual(await flowsNow(), [{ from: a.peerId, to: b.peerId, bytes: 1500 }]);
    ok(await b.ask('report', bReport(5500)));
    assert.deepEqual(await flowsNow(), [], 'nothing new');
    ok(await b.ask('report', bReport(100)));
    assert.deepEqual(await flowsNow(), [], 'a counter that went back is no negative flow');
    ok(await b.ask('report', { ...bReport(0), receivedFrom: { [a.peerId]: 300, [r.peerId]: 70 } }));
    assert.deepEqual(
      (await flowsNow()).map((f) => `${f.from}>${f.to}:${f.bytes}`).sort(),
      [`${a.peerId}>${b.peerId}:200`, `${r.peerId}>${b.peerId}:70`].sort(),
    );

    // Departed peers' bytes stay in the totals.
    await cleanup(tracker, a, b, r);
    const after = await until('a sample after they left', async () => {
      const s = (await getJson<ChannelStats>(statsUrl)).body;
      return s.current.viewers === 0 ? s : undefined;
    });
    assert.equal(after.current.httpBytes, http);
    assert.equal(after.current.p2pBytes, p2p);
    const m2 = await metricsOf(tracker);
    assert.equal(metric(m2, 'peertv_tracker_peers', { channel: 'tv', kind: 'node' }), undefined);
    assert.equal(metric(m2, 'peertv_channel_viewers', { channel: 'tv' }), 0);
    assert.ok(metric(m2, 'peertv_tracker_leaves_total', { reason: 'disconnect' })! >= 3);
  });

  test('offload from the origin counters the TrackerLink pushes', async () => {
    const t = await startTracker({ statsIntervalMs: 200, reportIntervalMs: 1000, peerTimeoutMs: 60_000 });
    const l = await linkTo(t);
    await waitFor(l, 'registered', 10_000);
    const statsUrl = `${t.url}/api/channels/tv/stats`;
    // Before any peer data there is no offload.
    // The first sample after the source's counters arrived (samples before them have none).
    const early = await until('a sample with the origin counters', async () => {
      const s = (await getJson<ChannelStats>(statsUrl)).body;
      return s.history.length > 0 && s.current.originSegmentBytes !== null ? s : undefined;
    });
    assert.equal(early.current.offload, null);
    assert.equal(early.current.originSegmentBytes, 0, 'counted from the first report on');

    const p1 = await joinAs(t.url, '180p');
    const p2 = await joinAs(t.url, '180p');
    assert.ok(p1.join!.firstTier);
    // The first-tier peer fetches two segments from the origin.
    const first = await p1.waitFor<Attestation>('attestation', () => true, 15_000);
    const second = await p1.waitFor<Attestation>(
      'attestation',
      (a) => a.mediaSequence > first.mediaSequence,
      15_000,
    );
    let fetched = 0;
    for (const seq of [first.mediaSequence, second.mediaSequence]) {
      const res = await fetch(`${base}/segments/180p/${seq}.ts`);
      assert.equal(res.status, 200);
      fetched += (await res.arrayBuffer()).byteLength;
    }
    assert.ok(fetched > 0);
    ok(await p1.ask('report', peerReport({ httpBytes: fetched, uploadedBytes: 3 * fetched })));
    ok(
      await p2.ask(
        'report',
        peerReport({ p2pBytes: 3 * fetched, receivedFrom: { [p1.peerId]: 3 * fetched } }),
      ),
    );
    const s = await until('a sample with the origin bytes and the reports', async () => {
      const x = (await getJson<ChannelStats>(statsUrl)).body;
      return x.current.originSegmentBytes === fetched && x.current.p2pBytes === 3 * fetched ? x : undefined;
    });
    assert.equal(s.current.httpBytes, fetched);
    assert.equal(s.current.uploadedBytes, 3 * fetched, 'uploaded bytes summed from the reports');
    assert.ok(Math.abs(s.current.offload! - 0.75) < 1e-9, `offload ${s.current.offload}`);
    assert.equal(s.offloadWindowS, 60, 'the stats say which window the offload is over');
    const info = (await getJson<ChannelInfo>(`${t.url}/api/channels/tv`)).body;
    assert.ok(Math.abs(info.offload! - 0.75) < 1e-9, 'directory shows the offload');
    assert.equal(info.offloadWindowS, 60, 'and over which window');
    const m = await metricsOf(t);
    assert.equal(metric(m, 'peertv_channel_bytes', { channel: 'tv', source: 'origin' }), fetched);
    assert.ok(Math.abs(metric(m, 'peertv_channel_offload_ratio', { channel: 'tv' })! - 0.75) < 1e-9);
    await cleanup(t, p1, p2);
    l.destroy();
  });

  test('leave: neighbours get `remove`, viewers drop, a new first tier is chosen', async () => {
    const a = await joinAs(tracker.url, '180p');
    const b = await joinAs(tracker.url, '180p');
    const c = await joinAs(tracker.url, '180p');
    assert.ok(a.join!.firstTier);
    assert.equal((await getJson<ChannelInfo>(`${tracker.url}/api/channels/tv`)).body.viewers, 3);
    ok(await a.ask('leave'));
    for (const x of [b, c])
      assert.deepEqual((await x.waitFor<NeighboursUpdate>('neighbours', (u) => u.remove.length > 0)).remove, [
        a.peerId,
      ]);
    const promoted = await Promise.any(
      [b, c].map((x) => x.waitFor<NeighboursUpdate>('neighbours', (u) => u.firstTier).then(() => x)),
    );
    const other = promoted === b ? c : b;
    await Promise.all([sync(b), sync(c)]);
    assert.equal(other.seen<NeighboursUpdate>('neighbours', (u) => u.firstTier).length, 0, 'one first tier');
    const stats = (await getJson<ChannelStats>(`${tracker.url}/api/channels/tv/stats`)).body;
    assert.deepEqual(
      stats.overlay.peers.filter((p) => p.firstTier).map((p) => p.id),
      [promoted.peerId],
    );
    assert.equal((await getJson<ChannelInfo>(`${tracker.url}/api/channels/tv`)).body.viewers, 2);
    assert.ok(!(await tracker.store.hasLink(b.peerId, a.peerId)));
    assert.ok(await tracker.store.hasLink(b.peerId, c.peerId), 'the other link stays');

    // The one that left is no longer a peer, and can't be reached.
    const gone = await a.ask('signal', { to: b.peerId, data: { type: 'offer', sdp: 'x' } });
    assert.deepEqual(gone.ok ? 'ok' : gone.error.code, 'not-joined');
    const toGone = await b.ask('signal', { to: a.peerId, data: { type: 'offer', sdp: 'x' } });
    assert.deepEqual(toGone.ok ? 'ok' : toGone.error.code, 'unknown-peer');
    // Leaving twice is harmless; joining again gives a new id.
    ok(await a.ask('leave'));
    const again = ok(
      await a.ask<JoinResult>('join', {
        protocolVersion: TRACKER_PROTOCOL_VERSION,
        channel: 'tv',
        kind: 'node',
        rendition: '90p',
        uploadKbps: 10,
      }),
    );
    assert.notEqual(again.peerId, a.peerId);
    assert.equal(again.firstTier, true);

    // A disconnect counts as leaving too.
    promoted.socket.disconnect();
    await other.waitFor<NeighboursUpdate>('neighbours', (u) => u.remove.includes(promoted.peerId));
    await other.waitFor<NeighboursUpdate>('neighbours', (u) => u.firstTier);
    assert.equal((await getJson<ChannelInfo>(`${tracker.url}/api/channels/tv`)).body.viewers, 2);
    await cleanup(tracker, a, other);
  });

  test('time-out: a silent peer is dropped and disconnected, a reporting one stays', async () => {
    const t = await startTracker({ reportIntervalMs: 200, peerTimeoutMs: 600, statsIntervalMs: 200 });
    const l = await linkTo(t);
    await waitFor(l, 'registered', 10_000);
    const left: { id: string; reason: string }[] = [];
    t.on('peer-left', (info) => left.push(info));
    const silent = await joinAs(t.url, '180p');
    const talker = await joinAs(t.url, '180p');
    assert.equal(talker.join!.reportIntervalMs, 200);
    const timer = setInterval(() => talker.socket.emit('report', peerReport()), 150);
    try {
      const reason = await new Promise<string>((resolve, reject) => {
        const to = setTimeout(() => reject(new Error('silent peer was not disconnected')), 5000);
        silent.socket.once('disconnect', (r) => {
          clearTimeout(to);
          resolve(r);
        });
      });
      assert.equal(reason, 'io server disconnect');
      assert.deepEqual(left, [{ id: silent.peerId, channel: 'tv', reason: 'timeout' }]);
      await talker.waitFor<NeighboursUpdate>('neighbours', (u) => u.remove.includes(silent.peerId));
      await talker.waitFor<NeighboursUpdate>('neighbours', (u) => u.firstTier);
      await new Promise((r) => setTimeout(r, 1200)); // two time-outs later
      assert.ok(talker.socket.connected, 'the reporting peer stays');
      assert.equal((await getJson<ChannelInfo>(`${t.url}/api/channels/tv`)).body.viewers, 1);
      assert.equal(left.length, 1);
      assert.equal(metric(await metricsOf(t), 'peertv_tracker_leaves_total', { reason: 'timeout' }), 1);
      assert.ok(l.registered, 'the source connection is not a peer and never times out');
    } finally {
      clearInterval(timer);
    }
    await cleanup(t, talker);
    l.destroy();
  });

  test("a second source with another key is refused; the channel's key updates the title", async () => {
    const hijacker = await connect(tracker.url);
    const { signature: _s, ...current } = link.registration();
    const other = ChannelSigner.generate();
    const reg = other.signRegistration({
      ...current,
      publicKey: other.publicKey,
      title: 'Hijacked',
      originUrl: 'http://127.0.0.1:9',
    });
    const refused = await hijacker.ask('source:register', reg);
    assert.deepEqual(refused.ok ? 'ok' : refused.error.code, 'unauthorized');
    // Not registered, so it cannot push attestations or counters either.
    const viewer = await joinAs(tracker.url, '180p');
    const real = await viewer.waitFor<Attestation>('attestation', () => true, 15_000);
    const fake = await hijacker.ask('source:attestation', real);
    assert.deepEqual(fake.ok ? 'ok' : fake.error.code, 'unauthorized');
    const counters = await hijacker.ask('source:counters', {
      segmentBytes: 0,
      playlistBytes: 0,
      attestationBytes: 0,
      segmentRequests: 0,
    });
    assert.deepEqual(counters.ok ? 'ok' : counters.error.code, 'unauthorized');

    const put = (body: object) =>
      fetch(`${tracker.url}/api/channels/tv`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const rest = await put(reg);
    assert.equal(rest.status, 403);
    const restBody = (await rest.json()) as { ok: boolean; error: { code: string } };
    assert.deepEqual([restBody.ok, restBody.error.code], [false, 'unauthorized']);
    const info = (await getJson<ChannelInfo>(`${tracker.url}/api/channels/tv`)).body;
    assert.equal(info.title, channel.settings.title);
    assert.equal(info.originUrl, origin.publicUrl, 'nothing of the refused registrations was applied');
    assert.equal(viewer.seen<ChannelInfo>('channel', (c) => c.title === 'Hijacked').length, 0);

    // The same registration replayed is refused; a fresh one signed by the channel's key is accepted.
    const fresh = link.registration();
    const first = await put(fresh);
    assert.equal(first.status, 200);
    await first.body?.cancel();
    const replayed = await put(fresh);
    assert.equal(replayed.status, 409);
    assert.equal(
      ((await replayed.json()) as { error: { code: string } }).error.code,
      'registration-replayed',
    );
    const right = await put(resigned({ title: 'Renamed by the broadcaster' }));
    assert.equal(right.status, 200);
    await right.body?.cancel();
    assert.equal(
      (await getJson<ChannelInfo>(`${tracker.url}/api/channels/tv`)).body.title,
      'Renamed by the broadcaster',
    );
    await viewer.waitFor<ChannelInfo>('channel', (c) => c.title === 'Renamed by the broadcaster');
    // The genuine source is still registered and its attestations still flow.
    assert.ok(link.registered);
    await viewer.waitFor<Attestation>('attestation', (a) => a.mediaSequence > real.mediaSequence, 15_000);
    await cleanup(tracker, viewer, hijacker);
  });
});
