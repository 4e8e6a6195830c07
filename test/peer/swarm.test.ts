/**
 * The whole data plane over real WebRTC on loopback: a test-pattern source, the tracker and five Node
 * viewers for 60 s. Every viewer plays without a stall, every segment is verified, and the origin sends
 * well under the bytes the viewers consume.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startNodePeer, type NodePeer } from '../../peer/node/index.ts';
import { TrackerLink, type Origin, type SourceChannel } from '../../source/index.ts';
import { Tracker } from '../../tracker/index.ts';
import { liveOrigin, segments, tinyChannel, waitFor } from '../helpers/source.ts';

const VIEWERS = 5;
const WATCH_MS = 60_000;

let channel: SourceChannel;
let origin: Origin;
let tracker: Tracker;
let link: TrackerLink;
const peers: NodePeer[] = [];

before(async () => {
  tracker = new Tracker({ reportIntervalMs: 1000, peerTimeoutMs: 5000, statsIntervalMs: 1000 });
  await tracker.listen(0);
  channel = tinyChannel({ id: 'swarm', segmentDurationS: 2 });
  ({ origin } = await liveOrigin(channel));
  link = new TrackerLink({
    trackerUrl: tracker.url,
    channel,
    origin,
  });
  await waitFor(link, 'registered', 20_000);
  await segments(channel, 3 * 2); // a few segments on air before viewers arrive
});

after(async () => {
  for (const p of peers) p.destroy();
  link?.destroy();
  await tracker?.destroy();
  await channel?.destroy();
  await origin?.destroy();
});

test(
  `${VIEWERS} Node viewers over WebRTC: no stalls, everything verified, offload above 65 %`,
  { timeout: 150_000 },
  async () => {
    const rejected: string[] = [];
    const loaded = { http: 0, p2p: 0 };
    const before = origin.counters().swarm!.segment.bytes;
    for (let i = 0; i < VIEWERS; i++) {
      const peer = await startNodePeer({
        trackerUrl: tracker.url,
        loopbackOnly: true,
        engine: { channel: 'swarm', rendition: '180p', kind: 'node', mode: 'viewer' },
      });
      peer.engine.on('segment-rejected', (r) => rejected.push(`${r.mediaSequence}: ${r.reason}`));
      peer.engine.on('segment-loaded', (s) => loaded[s.source]++);
      peers.push(peer);
      await new Promise((r) => setTimeout(r, 1000));
    }
    await new Promise((r) => setTimeout(r, WATCH_MS));

    const consumed = peers.reduce((sum, p) => sum + p.engine.httpBytes + p.engine.p2pBytes, 0);
    const originBytes = origin.counters().swarm!.segment.bytes - before;
    for (const [i, p] of peers.entries()) {
      assert.equal(p.player!.state, 'playing', `viewer ${i} is playing`);
      assert.equal(p.player!.stalls, 0, `viewer ${i} stalled`);
      assert.ok(p.player!.segmentsPlayed >= 25, `viewer ${i} played ${p.player!.segmentsPlayed} segments`);
    }
    assert.deepEqual(rejected, [], 'no segment failed verification');
    assert.ok(loaded.p2p > 0, 'segments travelled peer to peer');
    const share = originBytes / consumed;
    console.log(
      `origin ${originBytes} B for ${consumed} B consumed: offload ${((1 - share) * 100).toFixed(1)} %; ` +
        `segments http=${loaded.http} p2p=${loaded.p2p}`,
    );
    assert.ok(share < 0.35, `origin sent ${(share * 100).toFixed(1)} % of the consumed bytes`);
    // The tracker saw the swarm.
    const info = await tracker.channelInfo('swarm');
    assert.equal(info?.viewers, VIEWERS);
  },
);
