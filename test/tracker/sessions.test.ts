/**
 * The session core without any transport (as the simulator drives it): peers are plain objects with
 * `send` and `disconnect`; no socket.io, no HTTP server.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { emptyReport } from '../helpers/tracker-clients.ts';
import {
  MemoryTrackerStore,
  RandomPolicy,
  Reputation,
  Sessions,
  TrackerMetrics,
  type ChannelRecord,
  type PeerEvent,
  type PeerHandle,
  type PeerPlace,
} from '../../tracker/index.ts';
import {
  TRACKER_PROTOCOL_VERSION,
  type ChannelInfo,
  type PeerReport,
  type ServerToClientEvents,
} from '../../protocol/index.ts';
import { channelRecord } from '../helpers/channel-record.ts';

type Sent = { [E in PeerEvent]: [E, Parameters<ServerToClientEvents[E]>[0]] }[PeerEvent];

/** A peer's end of the core: records what it is sent and where it is placed. */
class FakePeer implements PeerHandle {
  readonly ip = '127.0.0.1';
  connected = true;
  readonly sent: Sent[] = [];
  place: PeerPlace | undefined;
  #waiters: (() => void)[] = [];

  send<E extends PeerEvent>(event: E, payload: Parameters<ServerToClientEvents[E]>[0]): void {
    this.sent.push([event, payload] as Sent);
    for (const w of this.#waiters.splice(0)) w();
  }

  disconnect(): void {
    this.connected = false;
  }

  placed(place: PeerPlace | undefined): void {
    this.place = place;
  }

  /** The first message sent to this peer that matches, waiting for it if need be. */
  async next(match: (m: Sent) => boolean, timeoutMs = 2000): Promise<Sent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.sent.find(match);
      if (m) return m;
      if (Date.now() > deadline) throw new Error('nothing matching was sent');
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }
}

const channel: ChannelRecord = channelRecord();

const report = (over: Partial<PeerReport> = {}): PeerReport =>
  emptyReport({ bufferS: 4, uploadKbps: 800, downloadKbps: 200, httpBytes: 1000, ...over });

const store = new MemoryTrackerStore();
const sessions = new Sessions(
  { pushCoalesceMs: 1 },
  {
    store,
    policy: new RandomPolicy(),
    reputation: new Reputation(),
    metrics: new TrackerMetrics(),
    channelInfo: async (id) => ({ id, title: channel.registration.title }) as ChannelInfo,
    iceServersFor: () => [],
  },
);
after(() => sessions.destroy());

test('two peers join, are introduced, report, signal; one leaves and the other is told', async () => {
  await store.putChannel('ch', channel);
  const left: string[] = [];
  sessions.on('peer-left', (info) => left.push(`${info.id} ${info.reason}`));

  const a = new FakePeer();
  const sa = sessions.open(a);
  const ja = await sessions.join(sa, {
    protocolVersion: TRACKER_PROTOCOL_VERSION,
    channel: 'ch',
    kind: 'node',
    mode: 'viewer',
    natType: 'unknown',
    uploadKbps: 1000,
  });
  assert.equal(ja.rendition, '180p', 'the lowest rendition when none is asked');
  assert.deepEqual(ja.neighbours, [], 'nobody to meet yet');
  assert.equal(ja.channel.id, 'ch');
  assert.deepEqual(a.place, { peerId: ja.peerId, channel: 'ch', rendition: '180p' });
  assert.equal(sessions.session(ja.peerId), sa);

  const b = new FakePeer();
  const sb = sessions.open(b);
  const jb = await sessions.join(sb, {
    protocolVersion: TRACKER_PROTOCOL_VERSION,
    channel: 'ch',
    kind: 'browser',
    mode: 'viewer',
    natType: 'unknown',
    uploadKbps: 500,
    rendition: '180p',
  });
  assert.deepEqual(jb.neighbours, [ja.peerId], 'the second peer meets the first');
  assert.deepEqual(await store.linksOf(ja.peerId), [jb.peerId]);
  // The first peer is told of the second (one coalesced push).
  const [, intro] = await a.next(([e, p]) => e === 'neighbours' && 'add' in p && p.add.includes(jb.peerId));
  assert.ok('firstTier' in intro);
  // One of the two pulls from the origin.
  const tier = (await store.channelPeers('ch')).filter((p) => p.firstTier).map((p) => p.id);
  assert.equal(tier.length, 1);

  await sessions.report(sa, report({ receivedFrom: { [jb.peerId]: 300 } }));
  const ra = (await store.getPeer(ja.peerId))!;
  assert.equal(ra.report?.bufferS, 4);
  assert.deepEqual(ra.flowsIn, { [jb.peerId]: 300 });

  await sessions.signal(sb, { to: ja.peerId, data: { type: 'offer', sdp: 'v=0' } });
  const [, signal] = await a.next(([e]) => e === 'signal');
  assert.deepEqual(signal, { from: jb.peerId, data: { type: 'offer', sdp: 'v=0' } });
  await assert.rejects(
    sessions.signal(sessions.open(new FakePeer()), { to: ja.peerId, data: { type: 'offer', sdp: 'x' } }),
    {
      code: 'not-joined',
    },
  );

  await sessions.leave(sb, 'leave');
  await sessions.leave(sb, 'leave'); // idempotent
  assert.equal(sb.peerId, undefined);
  assert.equal(b.place, undefined);
  assert.equal(await store.getPeer(jb.peerId), undefined);
  assert.deepEqual(left, [`${jb.peerId} leave`]);
  const [, gone] = await a.next(
    ([e, p]) => e === 'neighbours' && 'remove' in p && p.remove.includes(jb.peerId),
  );
  assert.ok('firstTier' in gone && gone.firstTier, 'the peer that stays pulls from the origin');
  assert.deepEqual(await store.linksOf(ja.peerId), []);
});

test('a silent peer times out and its connection is closed', async () => {
  let nowMs = 1_000_000;
  const timed = new Sessions(
    { pushCoalesceMs: 1 },
    {
      store,
      policy: new RandomPolicy(),
      reputation: new Reputation(),
      metrics: new TrackerMetrics(),
      channelInfo: async (id) => ({ id }) as ChannelInfo,
      iceServersFor: () => [],
      now: () => nowMs,
    },
  );
  try {
    const c = new FakePeer();
    const sc = timed.open(c);
    const { peerId } = await timed.join(sc, {
      protocolVersion: TRACKER_PROTOCOL_VERSION,
      channel: 'ch',
      kind: 'node',
      mode: 'viewer',
      natType: 'unknown',
      uploadKbps: 1000,
    });
    await timed.sweep();
    assert.ok(await store.getPeer(peerId), 'still fresh');
    nowMs += timed.opts.peerTimeoutMs + 1;
    await timed.sweep();
    assert.equal(await store.getPeer(peerId), undefined);
    assert.equal(c.connected, false);
  } finally {
    timed.destroy();
  }
});
