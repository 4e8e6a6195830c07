/**
 * Run inside a lab namespace: headless Chromium opens the channel's watch page as the lab's tracker
 * serves it, and waits until the page's engine learned its NAT type through ICE (the tracker's
 * `--nat-probe`); then asks the tracker which type it holds for that peer. Prints one JSON line:
 * { engine, tracker } (the tracker's `null`: it does not hold the peer). Usage: chromium-nat.ts TRACKER_URL CHANNEL
 */
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../helpers/browser.ts';
import type { ChannelStats } from '../../protocol/index.ts';

const [trackerUrl = '', channel = ''] = process.argv.slice(2);
if (!/^http:\/\/[\d.]+:\d+$/.test(trackerUrl) || !channel) {
  console.error('usage: chromium-nat.ts TRACKER_URL CHANNEL');
  process.exit(2);
}
// The lab serves plain http from a public address: not a secure context, so no WebCrypto, which the
// engine needs to check signatures (P2P would be off). A deployment serves https; here Chromium is told
// to treat the lab's tracker and origin as secure instead.
const origins = `${trackerUrl},${trackerUrl.replace(/:\d+$/, ':8081')}`;
const browser = await chromium.launch({
  executablePath: CHROMIUM_PATH,
  args: [...CHROMIUM_ARGS, `--unsafely-treat-insecure-origin-as-secure=${origins}`],
});
try {
  // No camera grant (what a viewer's page has): real interfaces, so ICE has candidates anyway.
  const page = await (await browser.newContext()).newPage();
  const log: string[] = [];
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  // The engine's debug lines (the debug package reads localStorage in browsers): shown on failure.
  await page.addInitScript(() => localStorage.setItem('debug', 'peertv:peer:*'));
  page.on('console', (m) => log.push(m.text().replace(/%c|color: \S+/g, '')));
  await page.goto(`${trackerUrl}/embed/${channel}`);
  type Engine = { peerId: string; natType: string };
  const engine = () =>
    page.evaluate(() => {
      const e = (window as unknown as { peertv?: { engine?: Engine } }).peertv?.engine;
      return { peerId: e?.peerId ?? '', natType: e?.natType ?? 'unknown' };
    });
  let seen = await engine();
  for (let deadline = Date.now() + 30_000; Date.now() < deadline; seen = await engine()) {
    if (seen.peerId && seen.natType !== 'unknown') break;
    await new Promise((r) => setTimeout(r, 250));
  }
  // The report carrying the type goes out at once; give it a moment to land.
  let held: string | undefined;
  for (let deadline = Date.now() + 10_000; Date.now() < deadline;) {
    const stats = (await (await fetch(`${trackerUrl}/api/channels/${channel}/stats`)).json()) as ChannelStats;
    held = stats.overlay.peers.find((p) => p.id === seen.peerId)?.natType;
    if (held === seen.natType) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  if (!seen.peerId || held !== seen.natType) console.error(log.slice(-30).join('\n'));
  console.log(JSON.stringify({ engine: seen.natType, tracker: held ?? null }));
} finally {
  await browser.close();
}
