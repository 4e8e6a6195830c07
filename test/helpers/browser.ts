/** Debian's Chromium for browser tests, driven by playwright-core (never a downloaded browser). */
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

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

/** One `waiting` → `playing` episode of a video element after playback started. */
export interface WaitEpisode {
  /** performance.now() (ms from navigation start) when the element began waiting, and when it played again (-1: still waiting). */
  atMs: number;
  endMs: number;
  /** The element was seeking: not a stall. */
  seek: boolean;
}

/**
 * What the page's video elements told, recorded by an init script independent of the page's code
 * (`window.playerLog`). Times are performance.now(): ms from navigation start.
 */
export interface PlayerLog {
  /** Navigation start to the first `playing` event of any video element, ms; -1 before. */
  startupMs: number;
  /** `waiting` episodes after playback started, seeks excepted. */
  stalls: number;
  /** Time spent in finished stalls, ms. */
  stallMs: number;
  /** performance.now() when the current stall began; -1 when playing. */
  waitingSince: number;
  episodes: WaitEpisode[];
}

/**
 * Installed before any of the page's scripts (`BrowserContext.addInitScript`, which the page's CSP does
 * not block): capturing listeners on the window see every video element's `playing` and `waiting`.
 */
export const PLAYER_LOG_SCRIPT = `(() => {
  const log = { startupMs: -1, stalls: 0, stallMs: 0, waitingSince: -1, episodes: [] };
  window.playerLog = log;
  let current = null;
  addEventListener('playing', (e) => {
    if (!(e.target instanceof HTMLMediaElement)) return;
    const now = performance.now();
    if (log.startupMs < 0) log.startupMs = now;
    if (current) {
      current.endMs = now;
      if (!current.seek) log.stallMs += now - current.atMs;
      current = null;
      log.waitingSince = -1;
    }
  }, true);
  addEventListener('waiting', (e) => {
    const v = e.target;
    if (!(v instanceof HTMLMediaElement) || log.startupMs < 0 || current) return;
    current = { atMs: performance.now(), endMs: -1, seek: v.seeking };
    log.episodes.push(current);
    if (!current.seek) {
      log.stalls++;
      log.waitingSince = current.atMs;
    }
  }, true);
})();`;

export type ViewerPageKind = 'watch' | 'embed' | 'bare';

/** The viewport each page is opened at: a desktop window for the watch page, the embed's iframe size. */
export const VIEWPORTS: Record<ViewerPageKind, { width: number; height: number }> = {
  watch: { width: 1280, height: 720 },
  embed: { width: 640, height: 360 },
  bare: { width: 640, height: 360 },
};

export interface ViewerPage {
  page: Page;
  context: BrowserContext;
  /** Uncaught page errors, as they come. */
  errors: string[];
}

export interface OpenOptions {
  /** When `goto` returns (default 'load': the player is attached; 'commit': as soon as the page is the tab's). */
  waitUntil?: 'commit' | 'domcontentloaded' | 'load';
}

/**
 * A fresh browser context (a cold cache, as a new viewer has) with one page at `viewport`, the
 * PlayerLog init script, and camera and microphone permission: Chromium lists its loopback candidate
 * only to pages holding them (nothing is captured).
 */
async function newViewerContext(
  browser: Browser,
  trackerUrl: string,
  viewport: { width: number; height: number },
): Promise<ViewerPage> {
  const context = await browser.newContext({ viewport });
  await context.grantPermissions(['camera', 'microphone'], { origin: trackerUrl });
  await context.addInitScript(PLAYER_LOG_SCRIPT);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return { page, context, errors };
}

/**
 * The page a viewer opens: `/watch/<channel>` or `/embed/<channel>` as the tracker serves it, with
 * `query` (e.g. `{ p2p: '0', candidates: 'loopback' }`), in a context of its own; the page's player is
 * `window.peertv` and its video element's account `window.playerLog` (a PlayerLog).
 */
export async function openWatchPage(
  browser: Browser,
  trackerUrl: string,
  channel: string,
  kind: 'watch' | 'embed',
  query: Record<string, string> = {},
  opts: OpenOptions = {},
): Promise<ViewerPage> {
  const v = await newViewerContext(browser, trackerUrl, VIEWPORTS[kind]);
  const q = new URLSearchParams(query).toString();
  await v.page.goto(`${trackerUrl}/${kind}/${encodeURIComponent(channel)}${q ? `?${q}` : ''}`, {
    waitUntil: opts.waitUntil ?? 'load',
  });
  return v;
}

/**
 * The bare attach page: a 640×360 `<video>`, the tracker's `/peertv.js` and
 * `window.peertv = PeerTV.attach(video, attach)`, nothing else, served at the tracker's origin (a
 * route of this context) and opened in a context of its own; `window.playerLog` as on the real pages.
 * Pass `loopbackOnly: true` to offer only 127.0.0.1 candidates.
 */
export async function openPlayerPage(
  browser: Browser,
  trackerUrl: string,
  attach: Record<string, unknown>,
  opts: OpenOptions = {},
): Promise<ViewerPage> {
  const v = await newViewerContext(browser, trackerUrl, VIEWPORTS.bare);
  const url = `${trackerUrl}/__bare-player-page`;
  const options = JSON.stringify(attach).replace(/</g, '\\u003c');
  const body = `<!doctype html><html><head><meta charset="utf-8"><title>bare player</title></head>
<body style="margin:0"><video id="v" muted playsinline style="width:640px;height:360px"></video>
<script src="/peertv.js"></script>
<script>window.peertv = PeerTV.attach(document.getElementById('v'), ${options});</script></body></html>`;
  await v.context.route(url, (route) => route.fulfill({ contentType: 'text/html', body }));
  // A document the context made up has no address, so Chromium counts it as public and blocks its
  // requests to 127.0.0.1 (Local Network Access) unless allowed; pages the tracker serves need nothing.
  await v.context.grantPermissions(['local-network-access'], { origin: trackerUrl });
  await v.page.goto(url, { waitUntil: opts.waitUntil ?? 'load' });
  // Routes intercept every request of the context (and turn its cache off): only this one document.
  await v.context.unroute(url);
  return v;
}
