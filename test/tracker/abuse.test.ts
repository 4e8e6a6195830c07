/**
 * Bad input and abuse against the tracker. Every test ends with a well-behaved pair of peers that
 * must still join and signal normally. Channels are registered directly by a socket (no real source).
 */
import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  TRACKER_PROTOCOL_VERSION,
  type Ack,
  type ChannelInfo,
  type ChannelRegistration,
  type JoinResult,
  type UnsignedRegistration,
} from '../../protocol/index.ts';
import { ChannelSigner } from '../../source/index.ts';
import type { Tracker } from '../../tracker/index.ts';
import { keyOf, signedRegistration } from '../helpers/registration.ts';
import { startTracker, stopTrackers } from '../helpers/tracker-fixture.ts';
import { Client, clients, code, connect, emptyReport, ok, open, until } from '../helpers/tracker-clients.ts';

// ---------------------------------------------------------------- clients

const joinReq = (over: Record<string, unknown> = {}) => ({
  protocolVersion: TRACKER_PROTOCOL_VERSION,
  channel: 'fake',
  kind: 'node',
  mode: 'viewer',
  rendition: '180p',
  uploadKbps: 1000,
  natType: 'unknown',
  ...over,
});

/** A registration signed with the channel's test key (fields in `over` are signed too). */
const registration = (channel: string, over: Partial<UnsignedRegistration> = {}): ChannelRegistration =>
  signedRegistration(channel, over);

const report = emptyReport;

async function joinAs(url: string, over: Record<string, unknown> = {}): Promise<Client> {
  const c = await connect(url);
  const res = ok(await c.ask<JoinResult>('join', joinReq(over)));
  c.peerId = res.peerId;
  c.join = res;
  return c;
}

/** Sum of the Prometheus samples of `name` whose labels include `labels`. */
async function metricSum(t: Tracker, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${t.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/**
 * A raw engine.io/socket.io session over HTTP long-polling: sends packets exactly as written, past
 * any client-side encoder (which would itself choke on very deep nesting).
 */
async function rawSession(url: string) {
  const handshake = await (await fetch(`${url}/socket.io/?EIO=4&transport=polling`)).text();
  assert.equal(handshake[0], '0');
  const sid = (JSON.parse(handshake.slice(1)) as { sid: string }).sid;
  const q = `${url}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
  const post = async (body: string) => {
    const res = await fetch(q, { method: 'POST', body });
    assert.equal(res.status, 200, await res.clone().text());
    await res.text();
  };
  const poll = async () => (await fetch(q)).text();
  await post('40');
  assert.match(await poll(), /^40/);
  let nextAck = 0;
  return {
    /** Emits `event` with a payload given as raw JSON text; resolves with the ack. */
    async ask(event: string, rawJson: string): Promise<Ack<object>> {
      const id = nextAck++;
      await post(`42${id}[${JSON.stringify(event)},${rawJson}]`);
      const deadline = Date.now() + 8000;
      while (Date.now() < deadline) {
        for (const packet of (await poll()).split('\x1e')) {
          const m = /^43(\d+)(.*)$/s.exec(packet);
          if (m && Number(m[1]) === id) return (JSON.parse(m[2]!) as [Ack<object>])[0];
        }
      }
      throw new Error(`no ack for raw ${event}`);
    },
    close: () => post('1'),
  };
}

// ---------------------------------------------------------------- fixture

/** Registers channels from one source socket each; returns the sockets. */
async function registerChannels(t: Tracker, ...ids: string[]): Promise<Client[]> {
  const out: Client[] = [];
  for (const id of ids) {
    const src = await connect(t.url);
    ok(await src.ask('source:register', registration(id)));
    out.push(src);
  }
  return out;
}

/** Two fresh peers join `fake`, are introduced, and relay an offer; then they go away. */
async function wellBehaved(t: Tracker): Promise<void> {
  const a = await joinAs(t.url);
  const b = await joinAs(t.url);
  assert.ok(b.join!.neighbours.includes(a.peerId), 'the newcomer is introduced to the earlier peer');
  ok(await a.ask('report', report()));
  ok(await a.ask('signal', { to: b.peerId, data: { type: 'offer', sdp: 'v=0' } }));
  assert.deepEqual(await b.waitFor('signal'), { from: a.peerId, data: { type: 'offer', sdp: 'v=0' } });
  ok(await b.ask('signal', { to: a.peerId, data: { type: 'answer', sdp: 'v=0' } }));
  await a.waitFor('signal');
  a.socket.disconnect();
  b.socket.disconnect();
  await until(
    'well-behaved peers gone',
    async () => !(await t.store.getPeer(a.peerId)) && !(await t.store.getPeer(b.peerId)),
  );
}

after(async () => {
  for (const c of clients) c.socket.disconnect();
  await stopTrackers();
});

describe('abuse against a tracker with default limits', () => {
  let t: Tracker;

  let sources: Client[] = [];

  before(async () => {
    // targetNeighbours 1 / maxNeighbours 1: a third peer of a rendition gets nobody to talk to.
    t = await startTracker({ targetNeighbours: 1, maxNeighbours: 1 });
    sources = await registerChannels(t, 'fake', 'other');
  });

  // A failing test must not leave peers behind for the next one.
  afterEach(async () => {
    for (const c of clients) if (!sources.includes(c)) c.socket.disconnect();
    await until('no peer left', async () => (await t.store.countPeers()) === 0);
  });

  test('malformed events get `invalid-input` and are counted in /metrics', async () => {
    const before = await metricSum(t, 'peertv_tracker_rejected_events_total', { code: 'invalid-input' });
    const s = await connect(t.url);
    const deep = (depth: number): unknown => {
      let o: unknown = 'x';
      for (let i = 0; i < depth; i++) o = { a: o };
      return o;
    };
    const bad: [string, unknown][] = [
      // not objects
      ['join', 42],
      ['join', 'join me'],
      ['join', null],
      ['join', true],
      ['join', []],
      ['report', 'x'],
      ['signal', 7],
      ['watch', 'everything'],
      ['source:register', []],
      ['source:counters', -1],
      ['source:attestation', 'sig'],
      // wrong types and values
      ['join', joinReq({ uploadKbps: 'fast' })],
      ['join', joinReq({ channel: 123 })],
      ['join', joinReq({ channel: '../etc' })],
      ['join', joinReq({ kind: 'toaster' })],
      ['join', joinReq({ uploadKbps: -5 })],
      ['join', joinReq({ uploadKbps: 1e12 })],
      ['report', report({ httpBytes: -1 })],
      ['report', report({ bufferS: 1e9 })],
      [
        'report',
        {
          ...report(),
          receivedFrom: Object.fromEntries(
            Array.from({ length: 65 }, (_, i) => [`${'A'.repeat(14)}${String(i).padStart(2, '0')}`, 1]),
          ),
        },
      ],
      ['signal', { to: 'not-a-peer-id', data: { type: 'offer', sdp: 'x' } }],
      ['signal', { to: 'A'.repeat(16), data: { type: 'hello' } }],
      ['watch', { channel: 'UPPER CASE' }],
      ['source:counters', { segmentBytes: 1.5, playlistBytes: 0, attestationBytes: 0, segmentRequests: 0 }],
      ['source:register', { ...registration('fake'), publicKey: 'short' }],
      ['source:register', { ...registration('fake'), signature: 'short' }],
      ['source:register', { ...registration('fake'), secret: 'a-shared-secret-of-old' }],
      // extra fields
      ['join', joinReq({ admin: true })],
      ['report', { ...report(), extra: 1 }],
      ['signal', { to: 'A'.repeat(16), data: { type: 'offer', sdp: 'x', evil: 1 } }],
      ['watch', { channel: 'fake', all: true }],
      ['source:register', { ...registration('new-one'), owner: 'me' }],
      // huge strings (under maxHttpBufferSize)
      ['join', 'j'.repeat(60_000)],
      ['join', joinReq({ channel: 'a'.repeat(50_000) })],
      ['signal', { to: 'A'.repeat(16), data: { type: 'offer', sdp: 's'.repeat(40_000) } }],
      // deeply nested
      ['join', deep(1000)],
      ['join', joinReq({ rendition: deep(1000) })],
      ['report', { ...report(), held: deep(1000) }],
    ];
    const perEvent = new Map<string, number>();
    for (const [event, payload] of bad) {
      const ack = await s.ask(event, payload);
      assert.equal(code(ack), 'invalid-input', `${event} ${JSON.stringify(payload).slice(0, 80)}`);
      perEvent.set(event, (perEvent.get(event) ?? 0) + 1);
    }
    // No ack at all, or a non-function "ack": nothing to answer, but still refused and counted.
    s.socket.emit('join', { nope: 1 });
    s.socket.emit('report', 'x', 'not a callback');
    // An event with no payload but an ack.
    assert.equal(code(await s.ask('join')), 'invalid-input');
    // Unknown events are refused and counted too (and cost a token of the rate limit).
    s.socket.emit('admin:shutdown', { now: true });
    assert.equal(code(await s.ask('admin:shutdown', { now: true })), 'invalid-input');
    const expected = bad.length + 5;
    await until('every refusal counted', async () => {
      const n = await metricSum(t, 'peertv_tracker_rejected_events_total', { code: 'invalid-input' });
      return n - before === expected;
    });
    assert.equal(
      (await metricSum(t, 'peertv_tracker_rejected_events_total', { code: 'invalid-input', event: 'join' })) >
        0,
      true,
    );
    // Nothing of that joined or registered anything, and the socket is still usable.
    assert.equal(await t.store.countPeers(), 0);
    assert.deepEqual(
      (await t.directory()).map((c) => c.id),
      ['fake', 'other'],
    );
    assert.ok(s.socket.connected);
    const me = ok(await s.ask<JoinResult>('join', joinReq()));
    assert.match(me.peerId, /^[A-Za-z0-9_-]{16}$/);
    s.socket.disconnect();
    await until('peer gone', async () => (await t.store.countPeers()) === 0);
    await wellBehaved(t);
  });

  test('deep nesting sent raw (past the client encoder) is refused without harm', async () => {
    const raw = await rawSession(t.url);
    // Within maxHttpBufferSize (64 KiB): 40 KB of arrays, 48 KB of objects.
    const deepArray = '['.repeat(20_000) + ']'.repeat(20_000);
    const deepObject = '{"a":'.repeat(8000) + '1' + '}'.repeat(8000);
    assert.equal(code(await raw.ask('join', deepArray)), 'invalid-input');
    assert.equal(code(await raw.ask('join', deepObject)), 'invalid-input');
    assert.equal(
      code(await raw.ask('join', JSON.stringify(joinReq({ natType: 'x' })).replace('"x"', deepObject))),
      'invalid-input',
    );
    assert.equal(code(await raw.ask('source:attestation', deepObject)), 'invalid-input');
    // The raw session is a real connection: it can join afterwards.
    const joined = await raw.ask('join', JSON.stringify(joinReq()));
    assert.equal(code(joined), 'ok');
    await raw.close();
    await until('raw peer gone', async () => (await t.store.countPeers()) === 0);
    await wellBehaved(t);
  });

  test('a deeply nested transceiverRequest.init is refused as invalid-input', async () => {
    const a = await joinAs(t.url);
    const raw = await rawSession(t.url);
    try {
      const joined = await raw.ask('join', JSON.stringify(joinReq()));
      assert.equal(code(joined), 'ok');
      const depth = 5000;
      const deep = '['.repeat(depth) + ']'.repeat(depth);
      const ack = await raw.ask(
        'signal',
        `{"to":"${a.peerId}","data":{"transceiverRequest":{"kind":"video","init":${deep}}}}`,
      );
      assert.equal(code(ack), 'invalid-input');
    } finally {
      await raw.close();
      a.socket.disconnect();
      await until('peers gone', async () => (await t.store.countPeers()) === 0);
    }
  });

  test('signaling: other channel, unknown peer, not introduced, not joined', async () => {
    const p1 = await joinAs(t.url);
    const p2 = await joinAs(t.url); // introduced to p1 (the only candidate)
    const p3 = await joinAs(t.url); // p1 and p2 are at maxNeighbours 1: nobody for p3
    const lo = await joinAs(t.url, { rendition: '90p' });
    const elsewhere = await joinAs(t.url, { channel: 'other' });
    assert.deepEqual(p2.join!.neighbours, [p1.peerId]);
    assert.deepEqual(p3.join!.neighbours, []);
    assert.deepEqual(lo.join!.neighbours, []);
    const signals0 = await metricSum(t, 'peertv_tracker_signals_relayed_total');
    const offer = { type: 'offer', sdp: 'v=0' };

    assert.equal(code(await p1.ask('signal', { to: elsewhere.peerId, data: offer })), 'other-channel');
    assert.equal(code(await elsewhere.ask('signal', { to: p1.peerId, data: offer })), 'other-channel');
    assert.equal(code(await p1.ask('signal', { to: 'AAAAAAAAAAAAAAAA', data: offer })), 'unknown-peer');
    assert.equal(
      code(await p1.ask('signal', { to: lo.peerId, data: offer })),
      'not-introduced',
      'other rendition',
    );
    assert.equal(
      code(await p3.ask('signal', { to: p1.peerId, data: offer })),
      'not-introduced',
      'same rendition',
    );
    assert.equal(code(await p1.ask('signal', { to: p3.peerId, data: offer })), 'not-introduced');
    assert.equal(code(await p1.ask('signal', { to: p1.peerId, data: offer })), 'not-introduced', 'itself');
    const stranger = await connect(t.url);
    assert.equal(code(await stranger.ask('signal', { to: p1.peerId, data: offer })), 'not-joined');
    assert.equal(code(await stranger.ask('report', report())), 'not-joined');
    // A source connection is not a peer either.
    const [src] = await registerChannels(t, 'third');
    assert.equal(code(await src!.ask('signal', { to: p1.peerId, data: offer })), 'not-joined');

    // Only the introduced pair can talk.
    ok(await p1.ask('signal', { to: p2.peerId, data: offer }));
    await p2.waitFor('signal');
    for (const c of [p1, p3, lo, elsewhere]) assert.equal(c.seen('signal').length, 0);
    assert.equal(await metricSum(t, 'peertv_tracker_signals_relayed_total'), signals0 + 1);
    assert.ok(
      (await metricSum(t, 'peertv_tracker_rejected_events_total', {
        event: 'signal',
        code: 'not-introduced',
      })) >= 4,
    );
    for (const c of [p1, p2, p3, lo, elsewhere, stranger, src!]) c.socket.disconnect();
    await until('peers gone', async () => (await t.store.countPeers()) === 0);
    await wellBehaved(t);
  });

  test('join: unknown channel or rendition, wrong version, twice, from a source connection', async () => {
    const s = await connect(t.url);
    assert.equal(code(await s.ask('join', joinReq({ channel: 'nope' }))), 'unknown-channel');
    const noRendition = await s.ask('join', joinReq({ rendition: '4k' }));
    assert.equal(code(noRendition), 'invalid-input');
    assert.match(noRendition.ok ? '' : noRendition.error.message, /rendition/);
    assert.equal(code(await s.ask('join', joinReq({ protocolVersion: 2 }))), 'version-mismatch');
    assert.equal(code(await s.ask('join', joinReq({ protocolVersion: '1' }))), 'version-mismatch');
    assert.equal(
      code(await s.ask('join', joinReq({ protocolVersion: 0, kind: 'toaster' }))),
      'version-mismatch',
    );
    const noVersion: Record<string, unknown> = joinReq();
    delete noVersion.protocolVersion;
    assert.equal(code(await s.ask('join', noVersion)), 'invalid-input');
    assert.equal(await t.store.countPeers(), 0, 'none of these joined');

    const first = ok(await s.ask<JoinResult>('join', joinReq()));
    assert.equal(code(await s.ask('join', joinReq())), 'already-joined');
    assert.equal(code(await s.ask('join', joinReq({ channel: 'other' }))), 'already-joined');
    assert.equal(code(await s.ask('source:register', registration('mine'))), 'already-joined');
    assert.equal(await t.store.countPeers(), 1);
    assert.equal((await t.store.getPeer(first.peerId))?.channel, 'fake');
    assert.equal(await t.store.getChannel('mine'), undefined, 'a peer cannot register a channel');

    const [src] = await registerChannels(t, 'src-only');
    assert.equal(code(await src!.ask('join', joinReq())), 'already-joined');
    assert.equal(await t.store.countPeers(), 1);
    s.socket.disconnect();
    src!.socket.disconnect();
    await until('peer gone', async () => (await t.store.countPeers()) === 0);
    await wellBehaved(t);
  });

  test("channel hijack without the channel's key, over socket.io and REST", async () => {
    const attacker = await connect(t.url);
    const stolen = signedRegistration(
      'fake',
      { title: 'Pwned', originUrl: 'http://127.0.0.1:1' },
      ChannelSigner.generate(),
    );
    assert.equal(code(await attacker.ask('source:register', stolen)), 'unauthorized');
    // The right key named, but not signed by it (a forged signature): refused too.
    const forged = { ...registration('fake'), title: 'Pwned' };
    assert.equal(code(await attacker.ask('source:register', forged)), 'unauthorized');
    const attestation = {
      v: 1,
      channel: 'fake',
      rendition: '180p',
      mediaSequence: 1,
      discontinuitySequence: 0,
      byteLength: 10,
      durationMs: 2000,
      sha256: 'a'.repeat(64),
      prevHash: '0'.repeat(64),
      publishedAtMs: Date.now(),
      signature: 'A'.repeat(86),
    };
    const viewer = await joinAs(t.url);
    assert.equal(code(await attacker.ask('source:attestation', attestation)), 'unauthorized');
    assert.equal(
      code(await viewer.ask('source:attestation', attestation)),
      'unauthorized',
      'a peer cannot either',
    );
    // A source of another channel can't push for this one, nor switch to it.
    const own = await connect(t.url);
    ok(await own.ask('source:register', registration('attacker-tv')));
    assert.equal(code(await own.ask('source:attestation', attestation)), 'unauthorized');
    assert.equal(
      code(await own.ask('source:register', signedRegistration('fake', {}, keyOf('attacker-tv')))),
      'invalid-input',
    );
    // REST
    const res = await fetch(`${t.url}/api/channels/fake`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(stolen),
    });
    assert.equal(res.status, 403);
    assert.deepEqual(((await res.json()) as { error: { code: string } }).error.code, 'unauthorized');

    const info = (await t.channelInfo('fake'))!;
    assert.equal(info.title, 'Fake fake');
    assert.equal(info.originUrl, 'http://127.0.0.1:9');
    ok(await viewer.ask('report', report())); // a round trip: anything forwarded would have arrived
    assert.equal(viewer.seen('attestation').length, 0, 'nothing forwarded');
    assert.equal(viewer.seen<ChannelInfo>('channel', (c) => c.title === 'Pwned').length, 0);
    assert.ok((await metricSum(t, 'peertv_tracker_rejected_events_total', { code: 'unauthorized' })) >= 5);
    for (const c of [attacker, viewer, own]) c.socket.disconnect();
    await until('peer gone', async () => (await t.store.countPeers()) === 0);
    await wellBehaved(t);
  });

  test('REST: invalid JSON, oversized and mismatched bodies to PUT /api/channels/:id', async () => {
    const before = await metricSum(t, 'peertv_tracker_rejected_events_total', { code: 'invalid-input' });
    const put = (body: string, type = 'application/json', id = 'fake') =>
      fetch(`${t.url}/api/channels/${id}`, { method: 'PUT', headers: { 'content-type': type }, body });
    const expectError = async (res: Response, status: number) => {
      assert.equal(res.status, status);
      assert.match(res.headers.get('content-type')!, /^application\/json/);
      const body = (await res.json()) as { ok: boolean; error: { code: string; message: string } };
      assert.equal(body.ok, false);
      assert.equal(body.error.code, 'invalid-input');
      assert.ok(body.error.message.length > 0);
    };
    await expectError(await put('{"protocolVersion": 1, '), 400);
    await expectError(await put('not json at all'), 400);
    await expectError(await put(JSON.stringify({ ...registration('fake'), title: 't'.repeat(40_000) })), 413);
    await expectError(await put(JSON.stringify(registration('fake')), 'text/plain'), 400);
    await expectError(await put(JSON.stringify(registration('other')), 'application/json', 'fake'), 400);
    await expectError(await put(JSON.stringify([1, 2, 3])), 400);
    await expectError(await put('null'), 400);
    assert.equal(
      (await metricSum(t, 'peertv_tracker_rejected_events_total', { code: 'invalid-input' })) - before,
      7,
      'all counted',
    );
    const unknown = await fetch(`${t.url}/api/nothing-here`);
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { ok: boolean }).ok, false);
    assert.equal((await t.channelInfo('fake'))!.title, 'Fake fake', 'nothing changed');
    await wellBehaved(t);
  });
});

describe('abuse needing special limits', () => {
  test('an event beyond maxHttpBufferSize drops only that connection', async () => {
    const t = await startTracker({ maxHttpBufferSize: 16 * 1024 });
    await registerChannels(t, 'fake');
    const bystander = await joinAs(t.url);
    const big = await joinAs(t.url);
    assert.equal(await t.store.countPeers('fake'), 2);
    const closed = big.closed();
    big.socket.emit('report', { ...report(), junk: 'x'.repeat(32 * 1024) });
    assert.match(await closed, /transport (close|error)/);
    await until('the dropped peer is removed', async () => (await t.store.countPeers('fake')) === 1);
    assert.ok(bystander.socket.connected);
    ok(await bystander.ask('report', report()));
    assert.deepEqual(
      (await bystander.waitFor<{ remove: string[] }>('neighbours', (u) => u.remove.length > 0)).remove,
      [big.peerId],
    );
    // Just under the limit is fine (and simply invalid).
    assert.equal(
      code(await bystander.ask('report', { ...report(), junk: 'x'.repeat(12 * 1024) })),
      'invalid-input',
    );
    assert.ok(bystander.socket.connected);
    bystander.socket.disconnect();
    await until('peer gone', async () => (await t.store.countPeers()) === 0);
    await wellBehaved(t);
  });

  test('floods get `rate-limited` acks, are counted, and a persistent flooder is disconnected', async () => {
    const t = await startTracker({ socketEventRate: 5, socketEventBurst: 10 });
    await registerChannels(t, 'fake');
    const flooder = await joinAs(t.url);
    const acks = await Promise.all(Array.from({ length: 150 }, () => flooder.ask('report', report())));
    const ok_ = acks.filter((a) => a.ok).length;
    const limited = acks.filter((a) => code(a) === 'rate-limited').length;
    assert.equal(ok_ + limited, 150);
    // The burst is 10 and the join took one.
    assert.ok(ok_ >= 9 && ok_ <= 15, `about the burst got through (${ok_})`);
    assert.ok(limited >= 130, `${limited} rate-limited`);
    assert.equal(await metricSum(t, 'peertv_tracker_rate_limited_total', { event: 'report' }), limited);
    assert.equal(
      await metricSum(t, 'peertv_tracker_rejected_events_total', { event: 'report', code: 'rate-limited' }),
      limited,
    );
    // Tokens come back at the rate.
    await new Promise((r) => setTimeout(r, 450));
    ok(await flooder.ask('report', report()));
    // Keeps flooding: more than 200 strikes and the tracker hangs up.
    const closed = flooder.closed();
    for (let i = 0; i < 120; i++) flooder.socket.emit('report', report());
    assert.equal(await closed, 'io server disconnect');
    await until('flooder removed', async () => (await t.store.countPeers()) === 0);
    await wellBehaved(t);
  });

  test('two joins sent at once on one connection: one is refused, no ghost peer, the connection is not timed out', async () => {
    const t = await startTracker({ reportIntervalMs: 200, peerTimeoutMs: 600 });
    await registerChannels(t, 'fake');
    const s = await connect(t.url);
    const acks = await Promise.all([
      s.ask<JoinResult>('join', joinReq()),
      s.ask<JoinResult>('join', joinReq()),
    ]);
    const problems: string[] = [];
    if (acks.map(code).sort().join() !== 'already-joined,ok')
      problems.push(`acks ${acks.map(code).join(', ')}`);
    // The connection reports on time: it must not be timed out.
    const timer = setInterval(() => s.socket.emit('report', report()), 100);
    await new Promise((r) => setTimeout(r, 1500));
    clearInterval(timer);
    if (!s.socket.connected) problems.push('a reporting connection was timed out');
    s.socket.disconnect();
    await new Promise((r) => setTimeout(r, 300));
    const left = await t.store.countPeers();
    if (left !== 0) problems.push(`${left} peer(s) left in the store after the connection closed`);
    assert.deepEqual(problems, []);
  });

  test('per-IP connection limit: the 4th connection is refused until one closes', async () => {
    const t = await startTracker({ maxConnectionsPerIp: 3 });
    const [src] = await registerChannels(t, 'fake');
    const c2 = await connect(t.url);
    const c3 = await connect(t.url);
    const fourth = open(t.url);
    const err = await new Promise<Error>((resolve, reject) => {
      fourth.socket.once('connect_error', resolve);
      fourth.socket.once('connect', () => reject(new Error('4th connection accepted')));
    });
    assert.equal(err.message, 'rate-limited');
    assert.ok(
      src!.socket.connected && c2.socket.connected && c3.socket.connected,
      'the first three are unaffected',
    );
    assert.ok((await metricSum(t, 'peertv_tracker_rejected_events_total', { event: 'connect' })) >= 1);
    // Two close: two peers fit again (refused attempts did not use up slots).
    c2.socket.disconnect();
    c3.socket.disconnect();
    await until('slots freed', async () => (await metricSum(t, 'peertv_tracker_sockets')) === 1);
    await wellBehaved(t);
    await until('slots freed again', async () => (await metricSum(t, 'peertv_tracker_sockets')) === 1);
    const again = [await connect(t.url), await connect(t.url)];
    const extra = open(t.url);
    await new Promise<void>((resolve, reject) => {
      extra.socket.once('connect_error', () => resolve());
      extra.socket.once('connect', () => reject(new Error('connection beyond the limit accepted')));
    });
    for (const c of again) c.socket.disconnect();
  });

  test('per-IP connection rate: a burst of new connections is cut off', async () => {
    const t = await startTracker({ ipConnectRate: 2, ipConnectBurst: 4 });
    const [src] = await registerChannels(t, 'fake');
    const tries = Array.from({ length: 6 }, () => open(t.url));
    const results = await Promise.all(
      tries.map(
        (c) =>
          new Promise<string>((resolve) => {
            c.socket.once('connect', () => resolve('connected'));
            c.socket.once('connect_error', (e) => resolve(e.message));
          }),
      ),
    );
    assert.equal(results.filter((r) => r === 'connected').length, 3, 'burst of 4 minus the source');
    assert.equal(results.filter((r) => r === 'rate-limited').length, 3);
    assert.equal(await metricSum(t, 'peertv_tracker_rate_limited_total', { event: 'connect' }), 3);
    for (const c of tries) c.socket.disconnect();
    assert.ok(src!.socket.connected);
    await new Promise((r) => setTimeout(r, 1100)); // two tokens back
    await wellBehaved(t);
  });

  test('a full tracker refuses joins with `tracker-full`', async () => {
    const t = await startTracker({ maxPeers: 2 });
    await registerChannels(t, 'fake');
    const a = await joinAs(t.url);
    const b = await joinAs(t.url);
    const c = await connect(t.url);
    assert.equal(code(await c.ask('join', joinReq())), 'tracker-full');
    a.socket.disconnect();
    b.socket.disconnect();
    await until('room again', async () => (await t.store.countPeers()) === 0);
    ok(await c.ask('join', joinReq()));
    c.socket.disconnect();
    await until('peer gone', async () => (await t.store.countPeers()) === 0);
    await wellBehaved(t);
  });
});
