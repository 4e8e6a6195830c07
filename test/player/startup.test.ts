/**
 * Playback never waits for P2P (Chromium, the real player bundle): with a tracker that accepts the
 * socket.io connection and never answers the join, the page plays from the origin at once (well
 * before the join could time out), reports no P2P, and the video's stalls are attributed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { launchChromium, openPlayerPage, type PlayerLog } from '../helpers/browser.ts';
import { buildPlayer } from '../../player/build/index.ts';
import { TrackerLink, type Origin, type SourceChannel } from '../../source/index.ts';
import { Tracker } from '../../tracker/index.ts';
import { liveOrigin, segments, tinyChannel, waitFor } from '../helpers/source.ts';

/** SocketIoTrackerConnection's default join timeout. */
const JOIN_TIMEOUT_MS = 10_000;

let tracker: Tracker;
let channel: SourceChannel;
let origin: Origin;
let link: TrackerLink;
let browser: Browser;
let joinsSwallowed = 0;

before(async () => {
  await buildPlayer();
  tracker = new Tracker({ playerDir: path.resolve(import.meta.dirname, '../../player/dist') });
  await tracker.listen(0);
  // The tracker accepts every connection and never answers a join (it swallows the event).
  tracker.io.on('connection', (socket) =>
    socket.use(([event], next) => {
      if (event === 'join') joinsSwallowed++;
      else next();
    }),
  );
  channel = tinyChannel({ id: 'mute', segmentDurationS: 2 });
  ({ origin } = await liveOrigin(channel));
  link = new TrackerLink({ trackerUrl: tracker.url, channel, origin });
  await waitFor(link, 'registered', 20_000);
  await segments(channel, 3);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  link?.destroy();
  await tracker?.destroy();
  await channel?.destroy();
  await origin?.destroy();
});

test(
  'a tracker that never answers the join: the page plays from the origin without waiting for it',
  { timeout: 90_000 },
  async (t) => {
    const { page, errors } = await openPlayerPage(browser, tracker.url, {
      tracker: tracker.url,
      channel: 'mute',
      loopbackOnly: true,
    });
    await page.waitForFunction(
      () => (window as unknown as { playerLog: PlayerLog }).playerLog.startupMs >= 0,
      undefined,
      {
        timeout: 60_000,
      },
    );
    const startupMs = await page.evaluate(
      () => (window as unknown as { playerLog: PlayerLog }).playerLog.startupMs,
    );
    t.diagnostic(`playing ${Math.round(startupMs)} ms after attach; join timeout ${JOIN_TIMEOUT_MS} ms`);
    assert.ok(joinsSwallowed >= 1, 'the page asked to join');
    // Before the join could even have timed out: nothing waited for it.
    assert.ok(startupMs < JOIN_TIMEOUT_MS, `playing after ${startupMs} ms`);
    await page.waitForTimeout(4000);
    const stats = await page.evaluate(() =>
      (
        window as unknown as {
          peertv: {
            stats: () => {
              httpBytes: number;
              p2pBytes: number;
              trackerConnected: boolean;
              state: string;
              stallsByCause: Record<string, number>;
            };
          };
        }
      ).peertv.stats(),
    );
    assert.equal(stats.trackerConnected, false, 'never joined');
    assert.equal(stats.p2pBytes, 0);
    assert.ok(stats.httpBytes > 0, 'the engine took over from the origin (or adopted what the page fetched)');
    assert.equal(stats.state, 'playing');
    assert.deepEqual(Object.keys(stats.stallsByCause).sort(), ['cpu', 'origin', 'p2p', 'source', 'unknown']);
    assert.deepEqual(errors, []);
    await page.context().close();
  },
);
