/**
 * The web player's pages in Debian's Chromium (playwright-core): home, watch (live and recording) and
 * embed, against a real tracker serving player/dist and a tiny test-pattern channel. Screenshots go to
 * results/screenshots/player-*.png.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.ts';
import { io, type Socket } from 'socket.io-client';
import type { Ack } from '../../protocol/index.ts';
import { Tracker } from '../../tracker/index.ts';
import { TrackerLink, type Origin, type SourceChannel } from '../../source/index.ts';
import { buildPlayer } from '../../player/build/index.ts';
import type { Level, PeerTVPlayer, PlayerStats } from '../../player/src/api.ts';
import { liveOrigin, segments, tempDir, tinyChannel, waitFor } from '../helpers/source.ts';
import { signedRegistration } from '../helpers/registration.ts';

declare global {
  interface Window {
    peertv?: PeerTVPlayer;
  }
}

const SHOTS = path.resolve('results/screenshots');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('web player pages in Chromium', { timeout: 120_000 }, () => {
  const dataDir = tempDir('peertv-ui-test-');
  let channel: SourceChannel;
  let origin: Origin;
  let tracker: Tracker;
  let link: TrackerLink;
  let idleSource: Socket | undefined;
  let browser: Browser;
  let desktop: BrowserContext;
  /** Uncaught page errors and console errors, by page URL (CSP violations show up here too). */
  const pageErrors: string[] = [];
  /** Two live viewers kept open through the tests (they are each other's peers). */
  let viewerA: Page;
  let viewerB: Page;

  function watchErrors(page: Page): Page {
    page.on('pageerror', (err) => pageErrors.push(`${page.url()}: ${err.message}`));
    page.on('console', (m) => {
      // Chromium logs failed fetches (aborted routes, the origin going away) as console errors; only
      // script and policy problems count.
      if (m.type() === 'error' && /Content Security Policy|Uncaught|TypeError|ReferenceError/.test(m.text()))
        pageErrors.push(`${page.url()}: ${m.text()}`);
    });
    return page;
  }

  async function open(ctx: BrowserContext, url: string): Promise<Page> {
    const page = watchErrors(await ctx.newPage());
    await page.goto(`${tracker.url}${url}`);
    return page;
  }

  /** Waits until the video plays and its time advances. */
  async function playing(page: Page, timeout = 25_000): Promise<void> {
    await page.waitForFunction(
      () => {
        const v = document.querySelector<HTMLVideoElement>('#video');
        return !!v && !v.paused && v.readyState >= 3 && v.currentTime > 0.3;
      },
      undefined,
      { timeout },
    );
    const t1 = await page.evaluate(() => document.querySelector<HTMLVideoElement>('#video')!.currentTime);
    await page.waitForFunction(
      (t) => document.querySelector<HTMLVideoElement>('#video')!.currentTime > t + 0.5,
      t1,
      { timeout: 10_000 },
    );
  }

  async function shot(page: Page, name: string, fullPage = false): Promise<void> {
    await sleep(400); // let the controls finish fading in
    await page.screenshot({ path: path.join(SHOTS, `player-${name}.png`), fullPage });
  }

  before(async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    await buildPlayer(true);
    channel = tinyChannel({ id: 'tv', dataDir });
    ({ origin } = await liveOrigin(channel));
    tracker = new Tracker({
      playerDir: path.resolve('player/dist'),
      statsIntervalMs: 500,
      reportIntervalMs: 1000,
      rebalanceIntervalMs: 2000,
    });
    await tracker.listen(0);
    link = new TrackerLink({
      trackerUrl: tracker.url,
      channel,
      origin,
      countersIntervalMs: 500,
    });
    await waitFor(link, 'registered', 10_000);
    // A second channel that is registered but not broadcasting.
    idleSource = io(tracker.url, { transports: ['websocket'], forceNew: true, reconnection: false });
    await new Promise<void>((resolve, reject) => {
      idleSource!.once('connect', resolve);
      idleSource!.once('connect_error', reject);
    });
    const reg = signedRegistration('quiet', {
      title: 'Quiet channel',
      originUrl: origin.publicUrl,
      renditions: link.registration().renditions,
      status: 'idle',
      livePlaylist: null,
    });
    const ack = (await idleSource.timeout(5000).emitWithAck('source:register', reg)) as Ack<object>;
    assert.ok(ack.ok, JSON.stringify(ack));
    await segments(channel, 6, '90p', 30_000);
    browser = await launchChromium();
    desktop = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  });

  after(async () => {
    await browser?.close();
    idleSource?.disconnect();
    link?.destroy();
    await tracker?.destroy();
    await channel?.destroy();
    await origin?.destroy();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('the watch page plays the live channel, with the LIVE badge and latency', async () => {
    viewerA = await open(desktop, '/watch/tv');
    viewerB = await open(desktop, '/watch/tv');
    await playing(viewerA);
    await playing(viewerB);
    const overlay = viewerA.locator('#state-overlay');
    assert.equal(await overlay.getAttribute('data-state'), 'none');
    assert.equal(await overlay.isHidden(), true);
    assert.equal(await viewerA.evaluate(() => typeof window.peertv?.stats), 'function');
    await viewerA.waitForFunction(
      () => document.querySelector('#latency')?.getAttribute('data-value') !== '',
    );
    const latency = Number(await viewerA.locator('#latency').getAttribute('data-value'));
    assert.ok(latency > 0 && latency < 20, `latency ${latency}`);
    assert.match((await viewerA.locator('#latency').textContent()) ?? '', /s behind live/);
    assert.equal(await viewerA.locator('#live-badge').getAttribute('data-at-edge'), 'true');
    assert.equal(await viewerA.locator('#go-live').isHidden(), true);
    assert.equal(await viewerA.locator('#timeline').isHidden(), true, 'no seek bar when live');
    assert.match((await viewerA.locator('#title').textContent()) ?? '', /\S/);
    // Share / Embed snippet.
    const snippet = await viewerA.locator('#embed-code').inputValue();
    assert.ok(snippet.startsWith(`<iframe src="${tracker.url}/embed/tv"`), snippet);
  });

  test('home lists the live channel with its viewer count, and the idle one as offline', async () => {
    const home = await open(desktop, '/');
    const tile = home.locator('#live-grid .tile[data-channel="tv"]');
    await tile.waitFor();
    assert.equal(await tile.getAttribute('href'), '/watch/tv');
    assert.match((await tile.locator('.tile-title').textContent()) ?? '', /\S/);
    assert.match((await tile.locator('.badge').textContent()) ?? '', /live/i);
    // Both viewers are counted (stats pushes keep the number current).
    await home.waitForFunction(
      () =>
        document.querySelector('.tile[data-channel="tv"] [data-viewers]')?.getAttribute('data-viewers') ===
        '2',
      undefined,
      { timeout: 10_000 },
    );
    assert.equal(await tile.locator('.thumb-viewers').textContent(), '2 watching');
    assert.match((await tile.locator('.card-meta').textContent()) ?? '', /180p · 90p/);
    // The channel's P2P figure, named as on the dashboard and with its window.
    assert.match(
      (await tile.locator('.card-sub').textContent()) ?? '',
      /^(\d+(\.\d)?% offload \(last 60 s\)|peer-to-peer delivery)$/,
    );
    const quiet = home.locator('#offline-list a[data-channel="quiet"]');
    assert.equal(await quiet.getAttribute('data-status'), 'idle');
    assert.equal(await quiet.locator('.offline-title').textContent(), 'Quiet channel');
    assert.equal(await home.locator('#conn').getAttribute('data-state'), 'online');
    await shot(home, 'home');
    await home.close();
  });

  test('the quality menu switches the rendition', async () => {
    const page = viewerA;
    const levels = await page.evaluate(() => window.peertv!.levels());
    assert.deepEqual(levels.map((l: Level) => l.name).sort(), ['180p', '90p']);
    const before = await page.evaluate(() => ({
      rendition: window.peertv!.stats().rendition,
      height: document.querySelector<HTMLVideoElement>('#video')!.videoHeight,
    }));
    const target = levels.find((l: Level) => l.height !== before.height)!;
    await page.click('#quality-button');
    const menu = page.locator('#quality-menu');
    await menu.waitFor();
    assert.equal(await menu.locator('[data-level="auto"]').getAttribute('aria-checked'), 'true');
    assert.equal(await menu.locator('[data-level]').count(), levels.length + 1);
    await menu.locator(`[data-level="${target.index}"]`).click();
    await page.waitForFunction(
      (t) =>
        window.peertv!.stats().rendition === t.name &&
        document.querySelector<HTMLVideoElement>('#video')!.videoHeight === t.height,
      target,
      { timeout: 20_000 },
    );
    assert.notEqual(target.name, before.rendition);
    assert.equal(await menu.isHidden(), true, 'the menu closes after a choice');
    await page.click('#quality-button');
    assert.equal(await menu.locator(`[data-level="${target.index}"]`).getAttribute('aria-checked'), 'true');
    assert.equal(await menu.locator('[data-level="auto"]').getAttribute('aria-checked'), 'false');
    assert.equal(await page.locator('#quality-label').textContent(), target.name);
    await page.keyboard.press('Escape');
    await menu.waitFor({ state: 'hidden' });
    // The other viewer plays the same rendition, so the two can share segments.
    await viewerB.evaluate((i) => window.peertv!.setLevel(i), target.index);
  });

  test("the stats panel shows the player's stats (data-value = stats(), same moment)", async () => {
    const page = viewerA;
    await page.click('#stats-button');
    await page.locator('#stats-panel').waitFor();
    const read = () =>
      page.evaluate(
        () =>
          new Promise<{ s: PlayerStats; fresh: PlayerStats; dom: Record<string, string> }>((resolve) => {
            window.peertv!.once('stats', (s) => {
              const dom: Record<string, string> = {};
              for (const dd of document.querySelectorAll<HTMLElement>('#stats-panel [data-stat]'))
                dom[dd.dataset.stat!] = dd.dataset.value!;
              resolve({ s, fresh: window.peertv!.stats(), dom });
            });
          }),
      );
    const keys = [
      'peers',
      'downloadKbps',
      'uploadKbps',
      'httpBytes',
      'p2pBytes',
      'uploadedBytes',
      'rendition',
      'bufferS',
      'latencyS',
    ] as const;
    for (let round = 0; round < 2; round++) {
      const { s, fresh, dom } = await read();
      for (const k of keys) {
        const v = s[k];
        const expected = v === null ? '' : String(v);
        assert.equal(dom[k], expected, `${k}: data-value ${dom[k]} vs stats ${expected}`);
      }
      // A second stats() read in the same task: counters agree exactly (rates are measured against
      // the clock, so they may move by the microsecond between two reads).
      for (const k of ['httpBytes', 'p2pBytes', 'uploadedBytes', 'peers', 'rendition', 'latencyS'] as const)
        assert.equal(dom[k], fresh[k] === null ? '' : String(fresh[k]), `${k} vs a fresh stats()`);
      assert.ok(s.httpBytes + s.p2pBytes > 0);
      // The panel's P2P figure: this player's own share of segment bytes from peers over the window.
      const own = dom.ownShare!;
      assert.ok(own === '' || (Number(own) >= 0 && Number(own) <= 1), `own share ${own}`);
    }
    assert.match((await page.locator('[data-stat="ownShare"]').textContent()) ?? '', /%$/);
    assert.equal(await page.locator('#own-share-window').textContent(), 'last 60 s');
    assert.match((await page.locator('[data-stat="downloadKbps"]').textContent()) ?? '', /bit\/s$/);
    // Give the two viewers a moment to trade segments, for a telling screenshot of whichever got more
    // from its peer (not asserted here: P2P has its own tests).
    const viewers = [viewerA, viewerB];
    const p2pBytes = () => Promise.all(viewers.map((p) => p.evaluate(() => window.peertv!.stats().p2pBytes)));
    for (let i = 0; i < 24 && !(await p2pBytes()).some((b) => b > 0); i++) await sleep(500);
    await sleep(2000);
    const p2p = await Promise.all(viewers.map((p) => p.evaluate(() => window.peertv!.stats())));
    console.log(
      'P2P in the browser:',
      p2p.map(
        (s) =>
          `${s.peers} peers, ${s.p2pBytes} B from peers, ${s.uploadedBytes} B uploaded, ${s.httpBytes} B http`,
      ),
    );
    const best = p2p[1]!.p2pShare > p2p[0]!.p2pShare ? viewerB : viewerA;
    if (best !== page) await best.click('#stats-button');
    await best.locator('#stats-panel').waitFor();
    const chartPixels = await best.evaluate(() => {
      const c = document.querySelector<HTMLCanvasElement>('#stats-chart')!;
      return c.width * c.height;
    });
    assert.ok(chartPixels > 0, 'the chart is drawn');
    await best.mouse.move(640, 200);
    await shot(best, 'watch-stats', true);
  });

  test('a closed stats panel is not updated, and is current as soon as it opens', async () => {
    const page = viewerA;
    if (await page.locator('#stats-panel').isVisible()) await page.click('#stats-button');
    await page.locator('#stats-panel').waitFor({ state: 'hidden' });
    const cells = () =>
      page.evaluate(() =>
        [...document.querySelectorAll<HTMLElement>('#stats-panel [data-stat]')]
          .map((dd) => `${dd.dataset.stat}=${dd.dataset.value}`)
          .join(' '),
      );
    const closed = await cells();
    // A few stats events later (the player's figures moved on), the closed panel is as it was.
    const moved = await page.evaluate(
      () =>
        new Promise<boolean>((resolve) => {
          const first = window.peertv!.stats();
          let n = 0;
          window.peertv!.on('stats', (s) => {
            if (++n === 3) resolve(s.bufferS !== first.bufferS || s.downloadKbps !== first.downloadKbps);
          });
        }),
    );
    assert.ok(moved, 'the stats moved on meanwhile');
    assert.equal(await cells(), closed);
    await page.click('#stats-button');
    const bytes = Number(await page.locator('[data-stat="httpBytes"]').getAttribute('data-value'));
    const now = await page.evaluate(() => window.peertv!.stats().httpBytes);
    assert.ok(
      bytes <= now && bytes >= now - 200_000,
      `opened panel shows the latest stats: ${bytes} vs ${now}`,
    );
  });

  test('a registered channel that is not broadcasting shows the offline overlay', async () => {
    const page = await open(desktop, '/watch/quiet');
    const overlay = page.locator('#state-overlay[data-state="offline"]');
    await overlay.waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('#state-title').textContent(), 'Channel offline');
    assert.match((await page.locator('#state-text').textContent()) ?? '', /Quiet channel/);
    assert.equal(await page.locator('#status-badge').getAttribute('data-status'), 'idle');
    assert.equal(await page.locator('#controls').isHidden(), true, 'nothing to control');
    await shot(page, 'offline');
    const unknown = await desktop.newPage();
    const res = await unknown.goto(`${tracker.url}/watch/Not%20A%20Channel`);
    assert.equal(res?.status(), 404);
    await Promise.all([page.close(), unknown.close()]);
  });

  test('without WebRTC, or without the tracker, a banner says so and playback goes on from the origin', async () => {
    const noRtc = watchErrors(await desktop.newPage());
    await noRtc.addInitScript(() => {
      delete (window as { RTCPeerConnection?: unknown }).RTCPeerConnection;
      delete (window as { webkitRTCPeerConnection?: unknown }).webkitRTCPeerConnection;
    });
    await noRtc.goto(`${tracker.url}/watch/tv`);
    await noRtc.locator('#banner[data-code="webrtc-unavailable"]').waitFor({ timeout: 10_000 });
    assert.match((await noRtc.locator('#banner-text').textContent()) ?? '', /WebRTC unavailable/);
    await playing(noRtc);
    await noRtc.close();

    // The origin is remembered from earlier visits; the tracker's directory does not answer.
    const noTracker = watchErrors(await desktop.newPage());
    await noTracker.route('**/api/channels/**', (route) => route.abort());
    await noTracker.goto(`${tracker.url}/watch/tv`);
    await noTracker.locator('#banner[data-code="tracker-unreachable"]').waitFor({ timeout: 10_000 });
    assert.match((await noTracker.locator('#banner-text').textContent()) ?? '', /Tracker unreachable/);
    await playing(noTracker);
    await noTracker.close();
  });

  test('phone-sized screens: no horizontal scroll, controls within reach', async () => {
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    try {
      const page = await open(phone, '/watch/tv');
      await playing(page);
      await page.click('#stats-button');
      await page.locator('#stats-panel').waitFor();
      const layout = await page.evaluate(() => {
        const d = document.documentElement;
        const controls = [...document.querySelectorAll<HTMLElement>('#controls button, #controls input')]
          .filter((e) => e.offsetParent !== null && getComputedStyle(e).visibility !== 'hidden')
          .map((e) => {
            const r = e.getBoundingClientRect();
            return { id: e.id, left: r.left, right: r.right, width: r.width };
          });
        return { scrollWidth: d.scrollWidth, clientWidth: d.clientWidth, controls };
      });
      assert.ok(layout.scrollWidth <= layout.clientWidth, `page scrolls sideways: ${JSON.stringify(layout)}`);
      for (const id of [
        'play-button',
        'mute-button',
        'live-badge',
        'stats-button',
        'quality-button',
        'fullscreen-button',
      ]) {
        const c = layout.controls.find((x) => x.id === id);
        assert.ok(c, `${id} is shown`);
        assert.ok(c.left >= 0 && c.right <= 390 && c.width >= 24, `${id} within reach: ${JSON.stringify(c)}`);
      }
      // The quality menu opens inside the screen.
      await page.tap('#quality-button');
      const menu = await page.locator('#quality-menu').boundingBox();
      assert.ok(menu && menu.x >= 0 && menu.x + menu.width <= 390 && menu.y >= 0, JSON.stringify(menu));
      await page.tap('[data-level="auto"]');
      await shot(page, 'watch-phone', true);
      const home = await open(phone, '/');
      await home.locator('.tile[data-channel="tv"]').waitFor();
      const homeLayout = await home.evaluate(() => [
        document.documentElement.scrollWidth,
        document.documentElement.clientWidth,
      ]);
      assert.ok(homeLayout[0]! <= homeLayout[1]!, `home scrolls sideways: ${homeLayout.join(' > ')}`);
      await shot(home, 'home-phone');
    } finally {
      await phone.close();
    }
  });

  test('the embed page fills its frame and exposes window.peertv', async () => {
    const ctx = await browser.newContext({ viewport: { width: 640, height: 360 } });
    try {
      const page = await open(ctx, '/embed/tv');
      await playing(page);
      const box = await page.locator('#video').boundingBox();
      assert.deepEqual([box?.x, box?.y, box?.width, box?.height], [0, 0, 640, 360]);
      assert.equal(await page.evaluate(() => document.documentElement.scrollHeight <= 360), true);
      assert.equal(await page.evaluate(() => window.peertv!.live), true);
      assert.equal(await page.locator('#external-link').getAttribute('href'), '/watch/tv');
      await page.mouse.move(320, 200);
      await shot(page, 'embed');
    } finally {
      await ctx.close();
    }
  });

  test('when the broadcast ends: the ended overlay links the recording, which plays with a seek bar', async () => {
    const page = viewerA;
    await viewerB.close();
    await channel.end();
    await page.locator('#state-overlay[data-state="ended"]').waitFor({ timeout: 30_000 });
    assert.equal(await page.locator('#state-title').textContent(), 'Broadcast ended');
    const recLink = page.locator('#ended-recording-link');
    await recLink.waitFor({ timeout: 10_000 });
    const href = (await recLink.getAttribute('href'))!;
    const recording = channel.store.broadcasts()[0]!.id;
    assert.equal(href, `/watch/tv?recording=${recording}`);
    await shot(page, 'ended');

    // A fresh visit to the live page says the same at once.
    const late = await open(desktop, '/watch/tv');
    await late
      .locator('#state-overlay[data-state="ended"] #ended-recording-link')
      .waitFor({ timeout: 10_000 });
    await late.close();

    await recLink.click();
    await page.waitForURL(`**${href}`);
    await playing(page);
    assert.equal(await page.evaluate(() => window.peertv!.live), false);
    assert.equal(await page.locator('#live-group').isHidden(), true);
    assert.equal(await page.locator('#timeline').isVisible(), true);
    const duration = await page.evaluate(() => document.querySelector<HTMLVideoElement>('#video')!.duration);
    assert.ok(duration > 4 && Number.isFinite(duration), `duration ${duration}`);
    assert.equal(Number(await page.locator('#seek').getAttribute('max')), duration);
    // Fetched segments and the buffered range show on the timeline.
    await page.waitForFunction(
      () => Number(document.querySelector('#tl-held')?.getAttribute('data-segments')) > 0,
      undefined,
      {
        timeout: 10_000,
      },
    );
    assert.ok((await page.locator('#tl-buffered span').count()) > 0);
    const fetched = await page.evaluate(() => {
      const p = window.peertv!;
      const details = p.hls?.levels[p.hls.currentLevel]?.details;
      return {
        held: p.heldSegments().length,
        playlist: details?.fragments.length ?? 0,
        firstSeq: details?.startSN,
        runs: [...document.querySelectorAll('#tl-held span')].map(
          (s) => `${s.getAttribute('data-start')}-${s.getAttribute('data-end')}`,
        ),
      };
    });
    console.log('recording: fetched segments on the timeline', fetched);
    // Seek with the bar.
    const to = Math.round(duration * 0.6 * 10) / 10;
    await page.locator('#seek').evaluate((input: HTMLInputElement, v) => {
      input.value = String(v);
      input.dispatchEvent(new Event('input', { bubbles: true }));
      input.dispatchEvent(new Event('change', { bubbles: true }));
    }, to);
    await page.waitForFunction(
      (t) => Math.abs(document.querySelector<HTMLVideoElement>('#video')!.currentTime - t) < 1.5,
      to,
      { timeout: 5000 },
    );
    await sleep(1200);
    await page.click('#stats-button');
    await page.mouse.move(640, 300);
    await shot(page, 'recording', true);
    await page.locator('#controls').screenshot({ path: path.join(SHOTS, 'player-recording-controls.png') });

    const home = await open(desktop, '/');
    const tile = home.locator(`#recorded-grid .tile[data-recording="${recording}"]`);
    await tile.waitFor({ timeout: 10_000 });
    assert.equal(await tile.getAttribute('href'), href);
    assert.equal(await home.locator('#live-grid .tile').count(), 0);
    assert.equal(await home.locator('#live-none').isVisible(), true);
    await shot(home, 'home-recorded');
    await home.close();
  });

  test('no script errors or policy violations on any page', () => {
    assert.deepEqual(pageErrors, []);
  });
});
