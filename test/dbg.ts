import { launchChromium, openPlayerPage } from './helpers/browser.ts';
import { buildPlayer } from '../scripts/build-player.ts';
import { TrackerLink } from '../source/index.ts';
import { Tracker } from '../tracker/index.ts';
import { liveOrigin, segments, tinyChannel, waitFor } from './helpers/source.ts';
await buildPlayer();
const tracker = new Tracker({ playerDir: '/work/i11-player/player/dist' });
await tracker.listen(0);
const channel = tinyChannel({ id: 'mute', segmentDurationS: 2 });
const { origin } = await liveOrigin(channel);
const link = new TrackerLink({ trackerUrl: tracker.url, channel, origin });
await waitFor(link, 'registered', 20_000);
await segments(channel, 3);
const browser = await launchChromium();
for (const p2p of [true, false, true, false]) {
  const ctx = await browser.newContext();
  await ctx.grantPermissions(['camera', 'microphone'], { origin: tracker.url });
  const page = await ctx.newPage();
  await page.addInitScript(() => {
    const t: string[] = [];
    (window as any).tl = t;
    const orig = (window as any).fetch;
    document.addEventListener('DOMContentLoaded', () => t.push(`dcl ${performance.now().toFixed(0)}`));
    new PerformanceObserver((l) => { for (const e of l.getEntries()) if (/\.ts$|m3u8|json/.test(e.name)) t.push(`res ${e.name.replace(/.*\/channels\/mute\//, '')} ${e.startTime.toFixed(0)}-${(e as any).responseEnd.toFixed(0)}`); }).observe({ type: 'resource', buffered: true });
  });
  await page.goto(`${tracker.url}/watch/mute?candidates=loopback${p2p ? '' : '&p2p=0'}`);
  await page.waitForFunction(() => !!(window as any).peertv?.hls);
  await page.evaluate(() => { const h = (window as any).peertv.hls; const t = h.trigger.bind(h); h.trigger = (ev: string, d: any) => { if (/FragLoading|FragLoaded|FragBuffered|ManifestParsed|LevelLoaded|MediaAttached/.test(ev)) (window as any).tl.push(`${ev} ${d?.frag?.sn ?? ''} ${performance.now().toFixed(0)}`); return t(ev, d); }; document.querySelector('video')!.addEventListener('playing', () => (window as any).tl.push(`PLAYING ${performance.now().toFixed(0)}`)); });
  await page.waitForTimeout(6000);
  console.log(p2p ? 'P2P' : 'HTTP', (await page.evaluate(() => (window as any).tl)).join('\n  '));
  await ctx.close();
}
await browser.close(); link.destroy(); await tracker.destroy(); await channel.destroy(); await origin.close();
