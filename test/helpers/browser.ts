/** Debian's Chromium for browser tests, driven by playwright-core (never a downloaded browser). */
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Headless, no background traffic, WebRTC allowed on loopback with real addresses (no mDNS). */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--autoplay-policy=no-user-gesture-required',
];

export const launchChromium = (): Promise<Browser> =>
  chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });

/** What a player page's video element told (see `openPlayerPage`). */
export interface PlayerLog {
  /** From attach to the first `playing` event, ms; -1 before. */
  startupMs: number;
  /** `waiting` episodes after playback started (no seeks happen on these pages). */
  stalls: number;
  /** Time spent in finished stalls, ms. */
  stallMs: number;
  /** performance.now() when the current stall began; -1 when playing. */
  waitingSince: number;
}

/**
 * A page in a context of its own playing a channel with the real player bundle:
 * `PeerTV.attach(video, attach)` from the tracker's `/peertv.js`; the player is `window.peertv` and
 * the video element's account `window.playerLog` (a PlayerLog). Chromium lists its loopback candidate
 * only to pages holding camera and microphone permission, so the context gets both (nothing is
 * captured); pass `loopbackOnly: true` to offer only 127.0.0.1 candidates.
 */
export async function openPlayerPage(
  browser: Browser,
  trackerUrl: string,
  attach: Record<string, unknown>,
): Promise<{ page: Page; errors: string[] }> {
  const ctx = await browser.newContext();
  await ctx.grantPermissions(['camera', 'microphone'], { origin: trackerUrl });
  const page = await ctx.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${trackerUrl}/healthz`);
  await page.setContent(
    `<video id="v" muted playsinline style="width:320px"></video><script src="${trackerUrl}/peertv.js"></script>`,
  );
  await page.waitForFunction(() => 'PeerTV' in window);
  await page.evaluate((options) => {
    const w = window as unknown as Record<string, unknown> & {
      PeerTV: { attach: (v: Element, o: object) => unknown };
    };
    const video = document.getElementById('v') as HTMLVideoElement;
    const t0 = performance.now();
    const log = { startupMs: -1, stalls: 0, stallMs: 0, waitingSince: -1 };
    w.playerLog = log;
    video.addEventListener('playing', () => {
      if (log.startupMs < 0) log.startupMs = performance.now() - t0;
      if (log.waitingSince >= 0) log.stallMs += performance.now() - log.waitingSince;
      log.waitingSince = -1;
    });
    video.addEventListener('waiting', () => {
      if (log.startupMs >= 0 && log.waitingSince < 0) {
        log.stalls++;
        log.waitingSince = performance.now();
      }
    });
    w.peertv = w.PeerTV.attach(video, options);
  }, attach);
  return { page, errors };
}
