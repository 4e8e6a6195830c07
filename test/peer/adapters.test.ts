/** The platform adapters against real servers on 127.0.0.1: fetchHttp and SocketIoTrackerConnection. */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server as IoServer } from 'socket.io';
import { io as ioClient, type Socket as ClientSocket } from 'socket.io-client';
import {
  GENESIS_HASH,
  TRACKER_PROTOCOL_VERSION,
  type Ack,
  type Attestation,
  type JoinRequest,
  type PeerReport,
  type SignalData,
} from '../../protocol/index.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { Tracker } from '../../tracker/index.ts';
import { createHttpFetcher, fetchHttp, fetchText, HttpBodyTooLargeError } from '../../peer/platform/http.ts';
import { SocketIoTrackerConnection } from '../../peer/platform/tracker-connection.ts';
import { signedRegistration } from '../helpers/registration.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function listen(server: http.Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    ),
  );
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

// ---------------------------------------------------------------- fetchHttp

describe('fetchHttp', () => {
  const body = new Uint8Array(200_000).map((_, i) => (i * 7) & 0xff);
  const hung = new Set<http.ServerResponse>();
  let closedEarly = 0;
  let server: http.Server;
  let base = '';

  before(async () => {
    server = http.createServer((req, res) => {
      const send = async (chunks: Uint8Array[], headers: http.OutgoingHttpHeaders = {}) => {
        res.writeHead(200, headers);
        for (const c of chunks) {
          res.write(c);
          await sleep(15);
        }
        res.end();
      };
      if (req.url === '/body') {
        const parts = [0, 1, 2, 3, 4].map((i) => body.subarray(i * 40_000, (i + 1) * 40_000));
        void send(parts, { 'Content-Length': String(body.length) });
      } else if (req.url === '/chunked') {
        void send([body.subarray(0, 1000), body.subarray(1000, 70_000), body.subarray(70_000)]);
      } else if (req.url === '/text') {
        const bytes = new TextEncoder().encode('#EXTM3U\n# café ☕ 日本\n');
        const cut = bytes.indexOf(0xc3) + 1; // split inside "é"
        void send([bytes.subarray(0, cut), bytes.subarray(cut)]);
      } else if (req.url === '/missing') {
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end('{"error":"not found"}');
      } else if (req.url === '/empty') {
        res.writeHead(204);
        res.end();
      } else if (req.url === '/hang') {
        res.writeHead(200, { 'Content-Length': '100000' });
        res.write(new Uint8Array(1000));
        hung.add(res);
        res.on('close', () => {
          hung.delete(res);
          closedEarly++;
        });
      } else {
        res.writeHead(500);
        res.end();
      }
    });
    base = await listen(server);
  });

  after(() => closeServer(server));

  test('streams the body: progress deltas sum to its length', async () => {
    const progress: number[] = [];
    const res = await fetchHttp.get(`${base}/body`, { onProgress: (n) => progress.push(n) });
    assert.equal(res.status, 200);
    assert.deepEqual(res.bytes, body);
    assert.ok(progress.length >= 2, `several progress calls (${progress.length})`);
    assert.equal(
      progress.reduce((a, b) => a + b, 0),
      body.length,
    );
  });

  test('a body without Content-Length', async () => {
    let sum = 0;
    const res = await fetchHttp.get(`${base}/chunked`, { onProgress: (n) => (sum += n) });
    assert.equal(res.status, 200);
    assert.deepEqual(res.bytes, body);
    assert.equal(sum, body.length);
  });

  test('an HTTP error status is returned, not thrown', async () => {
    const res = await fetchHttp.get(`${base}/missing`);
    assert.equal(res.status, 404);
    assert.equal(new TextDecoder().decode(res.bytes), '{"error":"not found"}');
    const empty = await fetchHttp.get(`${base}/empty`);
    assert.equal(empty.status, 204);
    assert.equal(empty.bytes.length, 0);
  });

  test('abort while the body arrives rejects and closes the request', async () => {
    const ac = new AbortController();
    const before = closedEarly;
    let got = 0;
    const p = fetchHttp.get(`${base}/hang`, {
      signal: ac.signal,
      onProgress: (n) => {
        got += n;
        ac.abort();
      },
    });
    await assert.rejects(p, (err: Error) => err.name === 'AbortError');
    assert.equal(got, 1000);
    await until('the server to see the request closed', () => closedEarly > before);
  });

  test('an already aborted signal rejects at once', async () => {
    await assert.rejects(fetchHttp.get(`${base}/body`, { signal: AbortSignal.abort() }), {
      name: 'AbortError',
    });
  });

  test('network errors reject', async () => {
    const closed = http.createServer();
    const url = await listen(closed);
    await closeServer(closed);
    await assert.rejects(fetchHttp.get(`${url}/x`));
  });

  test('bodies over maxBytes are refused', async () => {
    const small = createHttpFetcher({ maxBytes: 50_000 });
    await assert.rejects(small.get(`${base}/body`), HttpBodyTooLargeError); // declared length
    await assert.rejects(small.get(`${base}/chunked`), HttpBodyTooLargeError); // counted while streaming
    const exact = createHttpFetcher({ maxBytes: body.length });
    assert.equal((await exact.get(`${base}/chunked`)).bytes.length, body.length);
  });

  test('fetchText decodes UTF-8 split across chunks', async () => {
    const r = await fetchText(fetchHttp, `${base}/text`);
    assert.deepEqual(r, { status: 200, text: '#EXTM3U\n# café ☕ 日本\n' });
    assert.equal((await fetchText(fetchHttp, `${base}/missing`, new AbortController().signal)).status, 404);
  });
});

// ---------------------------------------------------------------- SocketIoTrackerConnection

/** The demo channel's registration, signed afresh (registrations are single-use). */
const registration = (over: { title?: string } = {}) =>
  signedRegistration('demo', {
    title: 't',
    renditions: [{ name: '480p', width: 854, height: 480, bandwidthBps: 1500000 }],
    ...over,
  });

const JOIN: JoinRequest = {
  protocolVersion: TRACKER_PROTOCOL_VERSION,
  channel: 'demo',
  kind: 'node',
  rendition: '480p',
  uploadKbps: 3000,
};

function ok<T extends object>(ack: Ack<T>): T {
  if (!ack.ok) assert.fail(`expected ok, got ${ack.error.code}: ${ack.error.message}`);
  return ack;
}

function report(over: Partial<PeerReport> = {}): PeerReport {
  return {
    rendition: '480p',
    bufferS: 4,
    held: { first: 1, last: 3 },
    uploadKbps: 100,
    downloadKbps: 2000,
    httpBytes: 1000,
    p2pBytes: 0,
    uploadedBytes: 0,
    neighbours: [],
    receivedFrom: {},
    ...over,
  };
}

function attestation(seq: number): Attestation {
  return {
    v: 1,
    channel: 'demo',
    rendition: '480p',
    mediaSequence: seq,
    discontinuitySequence: 0,
    byteLength: 1234,
    durationMs: 2000,
    sha256: 'c'.repeat(64),
    prevHash: GENESIS_HASH,
    publishedAtMs: 1_700_000_000_000,
    signature: 'A'.repeat(86),
  };
}

describe('SocketIoTrackerConnection against a real tracker', () => {
  let tracker: Tracker;
  let source: ClientSocket;
  const conns: SocketIoTrackerConnection[] = [];
  const connect = (extra: Partial<ConstructorParameters<typeof SocketIoTrackerConnection>[0]> = {}) => {
    const c = new SocketIoTrackerConnection({
      url: tracker.url,
      socketOptions: { reconnectionDelay: 50, reconnectionDelayMax: 200 },
      ...extra,
    });
    conns.push(c);
    return c;
  };
  const serverSocketOf = (peerId: string) =>
    [...tracker.io.sockets.sockets.values()].find((s) => s.data.peerId === peerId);

  before(async () => {
    tracker = new Tracker();
    await tracker.listen(0);
    source = ioClient(tracker.url, { transports: ['websocket'], forceNew: true, reconnection: false });
    const ack = (await source.timeout(5000).emitWithAck('source:register', registration())) as Ack<object>;
    ok(ack);
  });

  after(async () => {
    for (const c of conns) c.destroy();
    source.disconnect();
    await tracker.destroy();
  });

  test('two peers join; the second gets the first as neighbour; signals relay', async () => {
    const a = connect();
    const b = connect();
    const ja = ok(await a.join(JOIN));
    assert.match(ja.peerId, /^[A-Za-z0-9_-]{16}$/);
    assert.equal(ja.rendition, '480p');
    assert.equal(ja.channel.id, 'demo');
    assert.equal(ja.channel.renditions[0]!.name, '480p');
    assert.deepEqual(ja.neighbours, []);
    assert.ok(ja.reportIntervalMs > 0);
    assert.ok(Array.isArray(ja.iceServers));
    assert.equal(a.connected, true);

    // The introduction (a's first-tier change may come in a push of its own, before or after it).
    const aHearsOfB = new Promise<[{ add: string[]; remove: string[]; firstTier: boolean }]>((resolve) => {
      const on = (u: { add: string[]; remove: string[]; firstTier: boolean }) => {
        if (u.add.length === 0) return;
        a.off('neighbours', on);
        resolve([u]);
      };
      a.on('neighbours', on);
    });
    const jb = ok(await b.join({ ...JOIN, uploadKbps: 500, natType: 'open' }));
    assert.deepEqual(jb.neighbours, [ja.peerId]);
    const [update] = await aHearsOfB;
    assert.deepEqual(update.add, [jb.peerId]);
    assert.deepEqual(update.remove, []);
    assert.equal(typeof update.firstTier, 'boolean');

    const offer: SignalData = { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' };
    const aGetsOffer = waitFor(a, 'signal', 5000);
    assert.deepEqual(await b.signal(ja.peerId, offer), { ok: true });
    assert.deepEqual((await aGetsOffer)[0], { from: jb.peerId, data: offer });

    const candidate: SignalData = {
      type: 'candidate',
      candidate: {
        candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host',
        sdpMid: '0',
        sdpMLineIndex: 0,
      },
    };
    const bGetsCandidate = waitFor(b, 'signal', 5000);
    ok(await a.signal(jb.peerId, candidate));
    assert.deepEqual((await bGetsCandidate)[0], { from: ja.peerId, data: candidate });

    const refused = await a.signal('AAAAAAAAAAAAAAAA', offer);
    assert.equal(refused.ok, false);
    assert.equal(!refused.ok && refused.error.code, 'unknown-peer');
    const twice = await a.join(JOIN);
    assert.equal(!twice.ok && twice.error.code, 'already-joined');

    // Reports reach the tracker; refused ones are counted.
    a.report(report({ neighbours: [jb.peerId], receivedFrom: { [jb.peerId]: 10 } }));
    await until('the report', async () => (await tracker.store.getPeer(ja.peerId))?.report?.bufferS === 4);
    a.report(report({ rendition: 'nope' }));
    await until('a refused report', () => a.stats.reportsRefused === 1);
    assert.match(a.stats.lastReportError!, /^invalid-input: /);

    for (const c of [a, b]) c.destroy();
  });

  test('refusals resolve with the tracker’s error', async () => {
    const c = connect();
    const r = await c.join({ ...JOIN, channel: 'nowhere' });
    assert.equal(!r.ok && r.error.code, 'unknown-channel');
    const v = await c.join({ ...JOIN, rendition: '1080p' });
    assert.equal(!v.ok && v.error.code, 'invalid-input');
    const { rendition: _omitted, ...noRendition } = JOIN;
    const assigned = ok(await c.join(noRendition));
    assert.equal(assigned.rendition, '480p', 'assigned by the tracker');
    c.leave();
    await until('the leave', async () => (await tracker.store.getPeer(assigned.peerId)) === undefined);
    const s = await c.signal('AAAAAAAAAAAAAAAA', { renegotiate: true });
    assert.equal(!s.ok && s.error.code, 'not-joined');
    c.destroy();
  });

  test('pushes: attestations and channel updates arrive; invalid pushes are dropped and counted', async () => {
    const a = connect();
    const ja = ok(await a.join(JOIN));
    const events: string[] = [];
    a.on('neighbours', () => events.push('neighbours'));
    a.on('signal', () => events.push('signal'));
    a.on('attestation', () => events.push('attestation'));
    a.on('channel', () => events.push('channel'));

    const gotAtt = waitFor(a, 'attestation', 5000);
    ok((await source.timeout(5000).emitWithAck('source:attestation', attestation(7))) as Ack<object>);
    assert.deepEqual((await gotAtt)[0], attestation(7));

    const gotChannel = waitFor(a, 'channel', 5000);
    ok(
      (await source
        .timeout(5000)
        .emitWithAck('source:register', registration({ title: 'renamed' }))) as Ack<object>,
    );
    const [info] = await gotChannel;
    assert.equal(info.title, 'renamed');
    assert.equal(info.viewers, 1);

    events.length = 0;
    const room = tracker.io.to(`peer:${ja.peerId}`);
    const bad: [string, unknown][] = [
      ['neighbours', { add: ['not a peer id'], remove: [], firstTier: false }],
      ['neighbours', null],
      ['neighbours', { add: [], remove: [] }],
      ['signal', { from: ja.peerId, data: { type: 'offer', sdp: 'x', extra: 1 } }],
      ['signal', { from: '../../etc', data: { type: 'offer' } }],
      ['signal', 'garbage'],
      ['attestation', { ...attestation(8), signature: 'short' }],
      ['attestation', 42],
      ['channel', { id: 'Not Valid', title: 't' }],
      ['channel', []],
    ];
    for (const [event, payload] of bad) room.emit(event as 'neighbours', payload as never);
    // A valid push after the invalid ones (socket.io keeps the order): everything before it was handled.
    const sentinel = waitFor(a, 'neighbours', 5000);
    room.emit('neighbours', { add: [], remove: [], firstTier: true });
    assert.deepEqual((await sentinel)[0], { add: [], remove: [], firstTier: true });
    assert.deepEqual(events, ['neighbours']);
    assert.deepEqual(a.stats.invalidPushes, { neighbours: 3, signal: 3, attestation: 2, channel: 2 });
    assert.match(a.stats.lastInvalid!, /^channel: /);
    a.destroy();
  });

  test('a dropped transport: disconnected, reconnected, join again', async () => {
    const a = connect();
    const b = connect();
    const ja = ok(await a.join(JOIN));
    const jb = ok(await b.join(JOIN));
    assert.ok(jb.neighbours.includes(ja.peerId));

    const down = waitFor(a, 'disconnected', 5000);
    const up = waitFor(a, 'reconnected', 5000);
    const bHearsLoss = waitFor(b, 'neighbours', 5000);
    serverSocketOf(ja.peerId)!.conn.close();
    assert.deepEqual(await down, ['transport close']);
    a.report(report());
    assert.equal(a.stats.reportsDropped, 1, 'reports are dropped while disconnected');
    await assert.rejects(a.signal(jb.peerId, { renegotiate: true }), /not connected/);
    await up;
    assert.equal(a.stats.reconnects, 1);
    assert.deepEqual((await bHearsLoss)[0].remove, [ja.peerId]);
    const again = ok(await a.join(JOIN));
    assert.notEqual(again.peerId, ja.peerId);

    // The tracker kicking the session: socket.io would not come back by itself; the connection does.
    a.destroy();
    const k = connect({ reconnectAfterKickMs: 50 });
    const jk = ok(await k.join(JOIN));
    const kickedK = waitFor(k, 'disconnected', 5000);
    const backK = waitFor(k, 'reconnected', 5000);
    serverSocketOf(jk.peerId)!.disconnect(true);
    assert.deepEqual(await kickedK, ['io server disconnect']);
    await backK;
    ok(await k.join(JOIN));
    k.destroy();
    b.destroy();
  });

  test('leave and close', async () => {
    const a = connect();
    const ja = ok(await a.join(JOIN));
    const left = waitFor(tracker, 'peer-left', 5000);
    a.leave();
    assert.deepEqual((await left)[0], { id: ja.peerId, channel: 'demo', reason: 'leave' });
    const again = ok(await a.join(JOIN));
    const gone = waitFor(tracker, 'peer-left', 5000);
    a.destroy();
    a.destroy(); // idempotent
    assert.deepEqual((await gone)[0], { id: again.peerId, channel: 'demo', reason: 'disconnect' });
    assert.equal(a.closed, true);
    await assert.rejects(a.join(JOIN), /closed/);
    await assert.rejects(a.signal(again.peerId, { renegotiate: true }), /closed/);
    a.report(report());
    a.leave();
  });
});

describe('SocketIoTrackerConnection against a misbehaving server', () => {
  let server: http.Server;
  let ioServer: IoServer;
  let url = '';
  const conns: SocketIoTrackerConnection[] = [];

  before(async () => {
    server = http.createServer();
    ioServer = new IoServer(server);
    const refusedOnce = new Set<string>();
    ioServer.use((socket, next) => {
      const id = (socket.handshake.auth as { refuseOnce?: string }).refuseOnce;
      if (id === undefined || refusedOnce.has(id)) return next();
      refusedOnce.add(id);
      next(new Error('rate-limited'));
    });
    ioServer.on('connection', (socket) => {
      socket.on('join', (req: { channel?: string }, ack: (a: unknown) => void) => {
        if (req.channel === 'garbage') ack({ ok: true, peerId: 'x' });
        else if (req.channel === 'weird') ack({ ok: false, error: { code: 'no-such-code', message: 'm' } });
        else if (req.channel === 'late')
          setTimeout(() => ack({ ok: false, error: { code: 'internal', message: 'late' } }), 400);
        // otherwise: never answers
      });
      socket.on('signal', () => {});
    });
    url = await listen(server);
  });

  after(async () => {
    for (const c of conns) c.destroy();
    await new Promise<void>((resolve) => ioServer.close(() => resolve()));
  });

  test('a join nobody answers times out with a clear error', async () => {
    const c = new SocketIoTrackerConnection({ url, joinTimeoutMs: 300, ackTimeoutMs: 300 });
    conns.push(c);
    const t0 = Date.now();
    await assert.rejects(c.join(JOIN), /^Error: tracker did not answer join within 300 ms$/);
    assert.ok(Date.now() - t0 >= 290);
    await assert.rejects(c.join({ ...JOIN, channel: 'late' }), /did not answer join/);
    await assert.rejects(
      c.signal('AAAAAAAAAAAAAAAA', { renegotiate: true }),
      /did not answer signal within 300 ms/,
    );
  });

  test('malformed answers reject', async () => {
    const c = new SocketIoTrackerConnection({ url, joinTimeoutMs: 2000 });
    conns.push(c);
    await assert.rejects(c.join({ ...JOIN, channel: 'garbage' }), /malformed join answer/);
    await assert.rejects(c.join({ ...JOIN, channel: 'weird' }), /malformed join answer/);
  });

  test('a refused connection is tried again later; the buffered join goes out then', async () => {
    const c = new SocketIoTrackerConnection({
      url,
      joinTimeoutMs: 3000,
      reconnectAfterKickMs: 100,
      socketOptions: { auth: { refuseOnce: 'c1' } },
    });
    conns.push(c);
    await assert.rejects(c.join({ ...JOIN, channel: 'garbage' }), /malformed join answer/);
    assert.equal(c.stats.connectErrors, 1);
    assert.equal(c.connected, true);
  });

  test('an unreachable tracker: join times out, connect errors are counted', async () => {
    const closed = http.createServer();
    const deadUrl = await listen(closed);
    await closeServer(closed);
    const c = new SocketIoTrackerConnection({
      url: deadUrl,
      joinTimeoutMs: 300,
      socketOptions: { reconnectionDelay: 50, reconnectionDelayMax: 50 },
    });
    conns.push(c);
    await assert.rejects(c.join(JOIN), /did not answer join/);
    assert.ok(c.stats.connectErrors >= 1);
    assert.equal(c.connected, false);
    c.destroy();
  });
});
