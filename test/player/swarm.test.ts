/**
 * Three browser viewers (Debian's Chromium, the real player bundle: hls.js + the P2P fragment loader)
 * and one Node relay watch a test-pattern channel for 60 s over real WebRTC on loopback: every page
 * plays without a stall, the browsers receive bytes from peers, and browsers feed each other. The
 * tracker hands out NAT probe addresses (our STUN server with its RFC 5780 alternate, 127.0.0.1 and
 * 127.0.0.2): each page learns through ICE that it is behind no NAT and reports `open`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, openPlayerPage, type PlayerLog } from '../helpers/browser.ts';
import { buildPlayer } from '../../player/build/index.ts';
import { startNodePeer, type NodePeer } from '../../peer/node/index.ts';
import { TrackerLink, type Origin, type SourceChannel } from '../../source/index.ts';
import { Tracker } from '../../tracker/index.ts';
import { StunServer } from '../../stun/index.ts';
import { liveOrigin, segments, tinyChannel, waitFor } from '../helpers/source.ts';

const BROWSERS = 3;
const WATCH_MS = 60_000;

let tracker: Tracker;
let channel: SourceChannel;
let origin: Origin;
let link: TrackerLink;
let relay: NodePeer;
let browser: Browser;
let stun: StunServer;

before(async () => {
  await buildPlayer();
  stun = new StunServer({ host: '127.0.0.1', port: 0, alternate: { host: '127.0.0.2', port: 0 } });
  const ports = await stun.listen();
  tracker = new Tracker({
    natProbe: [`stun:127.0.0.1:${ports.udp}`, `stun:127.0.0.2:${ports.alternate}`],
    reportIntervalMs: 1000,
    playerDir: path.resolve(import.meta.dirname, '../../player/dist'),
  });
  await tracker.listen(0);
  channel = tinyChannel({ id: 'web', segmentDurationS: 2 });
  ({ origin } = await liveOrigin(channel));
  link = new TrackerLink({
    trackerUrl: tracker.url,
    channel,
    origin,
  });
  await waitFor(link, 'registered', 20_000);
  await segments(channel, 4);
  relay = await startNodePeer({
    trackerUrl: tracker.url,
    loopbackOnly: true,
    // Upload capped near one stream's bitrate: it cannot feed everyone, so browsers must feed each other.
    engine: { channel: 'web', mode: 'relay', kind: 'node', rendition: '180p', uploadCapKbps: 500 },
  });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  relay?.destroy();
  link?.destroy();
  await tracker?.destroy();
  await stun?.destroy();
  await channel?.destroy();
  await origin?.destroy();
});

async function viewer(): Promise<Page> {
  // Stalls as the video element reports them (window.playerLog); only 127.0.0.1 candidates.
  const { page, errors } = await openPlayerPage(browser, tracker.url, {
    tracker: tracker.url,
    channel: 'web',
    loopbackOnly: true,
  });
  (page as Page & { errors?: string[] }).errors = errors;
  return page;
}

test(
  `${BROWSERS} browser viewers and a Node relay: no stalls, peer bytes, browser-to-browser transfers`,
  { timeout: 180_000 },
  async () => {
    const pages: Page[] = [];
    for (let i = 0; i < BROWSERS; i++) {
      pages.push(await viewer());
      await new Promise((r) => setTimeout(r, 1500));
    }
    await new Promise((r) => setTimeout(r, WATCH_MS));

    type Snapshot = {
      log: PlayerLog;
      currentTime: number;
      peerId: string;
      firstTier: boolean;
      stats: { p2pBytes: number; httpBytes: number; uploadedBytes: number; peers: number };
      receivedFrom: Record<string, number>;
    };
    const snaps: Snapshot[] = [];
    for (const page of pages)
      snaps.push(
        await page.evaluate(() => {
          const w = window as unknown as {
            playerLog: Snapshot['log'];
            peertv: {
              stats(): Snapshot['stats'];
              engine: { peerId: string; firstTier: boolean; receivedFrom: Record<string, number> };
            };
          };
          return {
            log: w.playerLog,
            currentTime: (document.getElementById('v') as HTMLVideoElement).currentTime,
            peerId: w.peertv.engine.peerId,
            firstTier: w.peertv.engine.firstTier,
            stats: w.peertv.stats(),
            receivedFrom: { ...w.peertv.engine.receivedFrom },
          };
        }),
      );
    for (const [i, s] of snaps.entries()) {
      console.log(
        `browser ${i}${s.firstTier ? ' (first tier)' : ''}: t=${s.currentTime.toFixed(1)} s, ${JSON.stringify(s.stats)}`,
      );
      assert.ok(s.log.startupMs >= 0, `browser ${i} plays`);
      assert.equal(s.log.stalls, 0, `browser ${i} stalled`);
      assert.ok(s.currentTime > WATCH_MS / 1000 - 10, `browser ${i} played ${s.currentTime} s`);
      assert.deepEqual((pages[i] as Page & { errors?: string[] }).errors, [], `browser ${i} page errors`);
    }
    // Browser-to-browser: bytes one browser uploaded were received (and played) by another browser.
    const browserIds = new Set(snaps.map((s) => s.peerId));
    const fromBrowsers = snaps.reduce(
      (sum, s) =>
        sum +
        Object.entries(s.receivedFrom)
          .filter(([id]) => browserIds.has(id))
          .reduce((a, [, b]) => a + b, 0),
      0,
    );
    const uploadedByBrowsers = snaps.reduce((sum, s) => sum + s.stats.uploadedBytes, 0);
    assert.ok(snaps.reduce((sum, s) => sum + s.stats.p2pBytes, 0) > 0, 'browsers received bytes from peers');
    assert.ok(fromBrowsers > 0, 'a browser received segment bytes from another browser');
    assert.ok(uploadedByBrowsers > 0, 'browsers uploaded');
    console.log(
      `browser → browser: ${fromBrowsers} B; relay uploaded ${relay.engine.uploads.uploadedBytes} B`,
    );
    // NAT types as the tracker holds them: the pages probed (no NAT on loopback); the Node relay has no
    // prober (Node peers run RFC 5780 themselves with --stun) and stays unknown.
    for (const [i, s] of snaps.entries())
      assert.equal((await tracker.store.getPeer(s.peerId))?.natType, 'open', `browser ${i}'s NAT type`);
    assert.equal((await tracker.store.getPeer(relay.engine.peerId))?.natType, 'unknown');
  },
);
