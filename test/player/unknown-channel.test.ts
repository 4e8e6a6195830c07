/**
 * An unknown channel in the web player (Chromium): `PeerTV.attach(video, { channel: 'nosuch' })`
 * reports `unknown-channel` (not `tracker-unreachable`: the tracker is up), and the watch page shows
 * "Channel not found". Screenshot: results/screenshots/player-not-found.png.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { Tracker } from '../../tracker/index.ts';
import { buildPlayer } from '../../player/build/index.ts';
import { launchChromium } from '../helpers/browser.ts';

const SHOTS = path.resolve('results/screenshots');

describe('unknown channel in the web player', { timeout: 90_000 }, () => {
  let tracker: Tracker;
  let browser: Browser;

  before(async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    await buildPlayer();
    tracker = new Tracker({ playerDir: path.resolve('player/dist') });
    await tracker.listen(0);
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await tracker?.destroy();
  });

  test('PeerTV.attach with an unknown channel: notice and error with code unknown-channel', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${tracker.url}/healthz`);
    await page.setContent(
      `<video id="v" muted playsinline></video><script src="${tracker.url}/peertv.js"></script>`,
    );
    await page.waitForFunction(() => 'PeerTV' in window);
    await page.evaluate((url) => {
      const w = window as unknown as Record<string, unknown> & {
        PeerTV: { attach: (v: Element, o: object) => { on: (e: string, f: (x: unknown) => void) => void } };
      };
      const notices: unknown[] = [];
      const states: unknown[] = [];
      w.notices = notices;
      w.states = states;
      const p = w.PeerTV.attach(document.getElementById('v')!, { tracker: url, channel: 'nosuch' });
      p.on('notice', (n) => notices.push(n));
      p.on('state', (s) => states.push(s));
    }, tracker.url);
    await page.waitForFunction(
      () => (window as unknown as { notices: unknown[] }).notices.length > 0,
      undefined,
      {
        timeout: 10_000,
      },
    );
    const { notices, states } = await page.evaluate(() => {
      const w = window as unknown as { notices: { code: string; message: string }[]; states: string[] };
      return { notices: w.notices, states: w.states };
    });
    assert.deepEqual(
      notices.map((n) => n.code),
      ['unknown-channel'],
    );
    assert.match(notices[0]!.message, /no channel “nosuch”/);
    assert.deepEqual(states, ['error']);
    assert.deepEqual(errors, []);
    await page.close();
  });

  test('the watch page of an unknown channel shows "Channel not found"', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${tracker.url}/watch/nosuch`);
    await page.waitForFunction(
      () => document.getElementById('state-title')?.textContent === 'Channel not found',
      undefined,
      { timeout: 10_000 },
    );
    const overlay = await page.evaluate(() => ({
      state: document.getElementById('player')?.dataset.overlay,
      hidden: document.getElementById('state-overlay')?.hidden,
      text: document.getElementById('state-text')?.textContent,
    }));
    assert.deepEqual(overlay, {
      state: 'not-found',
      hidden: false,
      text: 'There is no channel “nosuch” on this tracker.',
    });
    // It stays so (no "Tracker unreachable" over it a moment later).
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await page.textContent('#state-title'), 'Channel not found');
    await page.screenshot({ path: path.join(SHOTS, 'player-not-found.png') });
    assert.deepEqual(errors, []);
    await page.close();
  });
});
