/**
 * The tracker's live dashboard in a real browser (Debian's Chromium through playwright-core), fed by a
 * real Tracker with a registered channel, fake peers reporting traffic, and the source's counters.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { io, type Socket } from 'socket.io-client';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.ts';
import { buildDashboard } from '../../player/build/index.ts';
import { DEFAULT_STATS, Tracker } from '../../tracker/index.ts';
import { signedRegistration } from '../helpers/registration.ts';
import type {
  ChannelRegistration,
  ClientToServerEvents,
  JoinRequest,
  ServerToClientEvents,
} from '../../protocol/index.ts';

type Client = Socket<ServerToClientEvents, ClientToServerEvents>;

const ROOT = path.resolve(import.meta.dirname, '../..');
const SHOTS = path.join(ROOT, 'results', 'screenshots');
const XSS_TITLE = '<img src=x onerror=alert(1)>';

const registration = (channel: string, title: string): ChannelRegistration =>
  signedRegistration(channel, {
    title,
    renditions: [{ name: '480p', width: 854, height: 480, bandwidthBps: 1_500_000 }],
  });

const sockets: Client[] = [];
async function client(url: string): Promise<Client> {
  const s: Client = io(url, { transports: ['websocket'], forceNew: true, reconnection: false });
  sockets.push(s);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('connect_error', reject);
  });
  return s;
}

async function source(url: string, channel: string, title: string): Promise<Client> {
  const s = await client(url);
  const ack = await s.emitWithAck('source:register', registration(channel, title));
  assert.ok(ack.ok, JSON.stringify(ack));
  return s;
}

interface FakePeer {
  name: string;
  socket: Client;
  id: string;
  neighbours: string[];
  /** Peers this one receives from, with the rate (bytes per tick). */
  feeders: { peer: FakePeer; rate: number }[];
  uploadKbps: number;
  httpRate: number;
  httpBytes: number;
  p2pBytes: number;
  uploadedBytes: number;
  receivedFrom: Record<string, number>;
  gone: boolean;
}

async function join(
  url: string,
  name: string,
  req: Pick<JoinRequest, 'kind' | 'uploadKbps'> & Partial<JoinRequest>,
  httpRate: number,
): Promise<FakePeer> {
  const socket = await client(url);
  const ack = await socket.emitWithAck('join', {
    protocolVersion: 1,
    channel: 'demo',
    rendition: '480p',
    ...req,
  });
  assert.ok(ack.ok, JSON.stringify(ack));
  return {
    name,
    socket,
    id: ack.peerId,
    neighbours: ack.neighbours,
    feeders: [],
    uploadKbps: req.uploadKbps,
    httpRate,
    httpBytes: 0,
    p2pBytes: 0,
    uploadedBytes: 0,
    receivedFrom: {},
    gone: false,
  };
}

/** Polls `fn` until it returns a truthy value (returned), or fails with the last value seen. */
type Falsy = null | undefined | false | '' | 0;
async function eventually<T>(
  what: string,
  fn: () => Promise<T | Falsy> | T | Falsy,
  timeoutMs = 8000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | Falsy;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const text = (page: Page, selector: string) => page.locator(selector).first().textContent();

let tracker: Tracker;
let url: string;
let browser: Browser;
let page: Page;
let peers: FakePeer[] = [];
let demoSource: Client;
let ticker: NodeJS.Timeout | undefined;
const dialogs: string[] = [];
const pageErrors: string[] = [];

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  // The dashboard's script is bundled with the player (tracker/dashboard/dist/dashboard.js).
  await buildDashboard();
  tracker = new Tracker({ statsIntervalMs: 300, rebalanceIntervalMs: 1000 });
  await tracker.listen(0, '127.0.0.1');
  url = tracker.url;
  // Registered first, so the default selection (most viewers) has to skip it.
  await source(url, 'xss', XSS_TITLE);
  demoSource = await source(url, 'demo', 'Dashboard demo');

  const relay = await join(
    url,
    'relay',
    { kind: 'node', mode: 'relay', uploadKbps: 20_000, natType: 'open' },
    60_000,
  );
  const seed = await join(url, 'seed', { kind: 'node', uploadKbps: 8000, natType: 'full-cone' }, 30_000);
  const alice = await join(
    url,
    'alice',
    { kind: 'browser', uploadKbps: 3000, natType: 'restricted-cone' },
    8000,
  );
  const bob = await join(url, 'bob', { kind: 'browser', uploadKbps: 1500, natType: 'symmetric' }, 6000);
  const carol = await join(
    url,
    'carol',
    { kind: 'browser', uploadKbps: 600, natType: 'port-restricted-cone' },
    4000,
  );
  seed.feeders = [{ peer: relay, rate: 50_000 }];
  alice.feeders = [
    { peer: relay, rate: 40_000 },
    { peer: seed, rate: 20_000 },
  ];
  bob.feeders = [{ peer: seed, rate: 45_000 }];
  carol.feeders = [
    { peer: alice, rate: 25_000 },
    { peer: bob, rate: 10_000 },
  ];
  peers = [relay, seed, alice, bob, carol];

  // Reports every 100 ms with growing byte counts; the origin's counters grow with the HTTP share.
  let originBytes = 1_000_000;
  let tick = 0;
  const report = () => {
    tick++;
    const wave = 1 + 0.3 * Math.sin(tick / 6);
    let httpThisTick = 0;
    for (const p of peers) {
      if (p.gone) continue;
      const http = Math.round(p.httpRate * wave);
      p.httpBytes += http;
      httpThisTick += http;
      for (const f of p.feeders) {
        if (f.peer.gone) continue;
        const bytes = Math.round(f.rate * wave);
        p.p2pBytes += bytes;
        f.peer.uploadedBytes += bytes;
        p.receivedFrom[f.peer.id] = (p.receivedFrom[f.peer.id] ?? 0) + bytes;
      }
    }
    for (const p of peers) {
      if (p.gone) continue;
      const neighbours = [...new Set([...p.neighbours, ...p.feeders.map((f) => f.peer.id)])].slice(0, 64);
      p.socket.emit('report', {
        rendition: '480p',
        bufferS: 4 + (tick % 7) * 0.5,
        held: null,
        uploadKbps: Math.round(p.uploadKbps * (0.5 + 0.3 * wave)),
        downloadKbps: Math.round(1600 * wave),
        httpBytes: p.httpBytes,
        p2pBytes: p.p2pBytes,
        uploadedBytes: p.uploadedBytes,
        neighbours,
        receivedFrom: p.receivedFrom,
      });
    }
    originBytes += Math.round(httpThisTick * 1.1);
    demoSource.emit('source:counters', {
      segmentBytes: originBytes,
      playlistBytes: tick * 900,
      attestationBytes: tick * 300,
      segmentRequests: tick * 4,
    });
  };
  report();
  ticker = setInterval(report, 100);

  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => void (m.type() === 'error' && pageErrors.push(m.text())));
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  await page.goto(`${url}/dashboard`);
});

after(async () => {
  if (ticker) clearInterval(ticker);
  await browser?.close();
  for (const s of sockets) s.disconnect();
  await tracker?.destroy();
});

test('shows the busiest channel: title, status, viewers, offload', async () => {
  await eventually('the title', async () => (await text(page, '#channel-title')) === 'Dashboard demo');
  assert.equal(await text(page, '#channel-status'), 'live');
  await eventually(
    '4 viewers (the relay is no viewer)',
    async () => (await text(page, '#kpi-viewers')) === '4',
  );
  const offload = await eventually('an offload figure', async () => {
    const t = (await text(page, '#kpi-offload')) ?? '';
    return /^\d+ %$/.test(t) ? t : null;
  });
  const pct = Number.parseInt(offload, 10);
  assert.ok(pct > 0 && pct < 100, `offload ${offload}`);
  assert.match((await text(page, '#kpi-offload-sub')) ?? '', /^last 60 s/, 'the window is stated');
  // Upload is the traffic between peers (≈ 190 kB per 100 ms tick here, 15 Mbit/s ± the wave), not the
  // sum of the capacities they declare (24–30 Mbit/s).
  const up = await eventually('upload traffic', async () => {
    const t = (await text(page, '#kpi-up')) ?? '';
    return /Mbit\/s$/.test(t) ? Number.parseFloat(t) : null;
  });
  assert.ok(up > 9 && up < 21, `upload ${up} Mbit/s`);
  assert.equal(await text(page, '#conn-text'), 'connected');
  assert.equal(await page.locator('#banner').isVisible(), false);
  // Two channels: the selector is there and lists both.
  assert.equal(await page.locator('#channel-select option').count(), 2);
});

test('charts are drawn and grow with every sample', async () => {
  const samples = async () =>
    page.$$eval('.chart', (figs) => figs.map((f) => Number((f as HTMLElement).dataset.samples ?? 0)));
  const first = await eventually('a few samples', async () => {
    const s = await samples();
    return s.length === 3 && s.every((n) => n >= 3) ? s : null;
  });
  await eventually('more samples', async () => (await samples()).every((n, i) => n > first[i]!));
  // Each chart's own series colour is on its canvas (lines, not just the empty grid).
  const painted = await page.$$eval('.chart canvas', (canvases) =>
    canvases.map((c) => {
      const canvas = c as HTMLCanvasElement;
      const ctx = canvas.getContext('2d')!;
      const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
      const css = getComputedStyle(document.documentElement);
      const id = canvas.closest('figure')!.id;
      const series: Record<string, string> = {
        'chart-viewers': '--series-viewers',
        'chart-offload': '--series-offload',
        'chart-bitrate': '--series-up',
      };
      const want = css.getPropertyValue(series[id] ?? '').trim();
      const [r, g, b] = [1, 3, 5].map((i) => Number.parseInt(want.slice(i, i + 2), 16));
      let hits = 0;
      let inked = 0;
      for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3]! > 0) inked++;
        if (
          data[i + 3]! > 200 &&
          Math.abs(data[i]! - r!) < 24 &&
          Math.abs(data[i + 1]! - g!) < 24 &&
          Math.abs(data[i + 2]! - b!) < 24
        )
          hits++;
      }
      return { id, hits, inked };
    }),
  );
  for (const c of painted) {
    assert.ok(c.inked > 1000, `${c.id} is blank: ${JSON.stringify(c)}`);
    assert.ok(c.hits > 40, `${c.id} shows no series line: ${JSON.stringify(c)}`);
  }
  // Hovering a chart reads out the sample under the pointer.
  const box = (await page.locator('#chart-viewers canvas').boundingBox())!;
  await page.mouse.move(box.x + box.width - 20, box.y + box.height / 2);
  await eventually('a hover readout', async () =>
    /^at \d\d:\d\d:\d\d$/.test((await text(page, '#chart-viewers .legend-time')) ?? ''),
  );
  await page.mouse.move(0, 0);
  // Legends carry the current values with units.
  assert.match((await text(page, '#chart-bitrate .legend')) ?? '', /download.*bit\/s.*upload.*bit\/s/);
  assert.match((await text(page, '#chart-offload .legend')) ?? '', /offload\s*\d+ %/);
});

test('overlay: the origin, one node per peer, relays marked, flow arrows', async () => {
  await eventually('5 peer nodes', async () => (await page.locator('#overlay .peer').count()) === 5);
  assert.equal(await page.locator('#overlay .origin').count(), 1);
  assert.equal(await page.locator('#overlay .peer.relay').count(), 1);
  assert.equal(await page.locator('#overlay .peer.kind-browser').count(), 3);
  assert.equal(await page.locator('#overlay .tier').count(), 1, 'one first-tier peer (one rendition)');
  await eventually('flow arrows', async () => (await page.locator('#overlay path.flow').count()) >= 3);
  // A flow we generate (relay → seed) is drawn in that direction.
  const [relay, seed] = peers;
  await eventually(
    'the relay → seed flow',
    async () =>
      (await page.locator(`#overlay path.flow[data-from="${relay!.id}"][data-to="${seed!.id}"]`).count()) ===
      1,
  );
  // Wider for more bytes: the widest arrow is at least twice the narrowest.
  const widths = await page.$$eval('#overlay path.flow', (ps) =>
    ps.map((p) => Number(p.getAttribute('stroke-width'))),
  );
  assert.ok(Math.max(...widths) >= 2 * Math.min(...widths), `widths ${widths}`);
  assert.match((await text(page, '#overlay-count')) ?? '', /^5 peers/);
  // The layout is stable between updates.
  const where = () => page.locator(`#overlay .peer[data-peer-id="${seed!.id}"]`).getAttribute('transform');
  const before1 = await where();
  await page.waitForTimeout(700);
  assert.equal(await where(), before1);
});

test('peer table: one row per peer with its details', async () => {
  await eventually('5 rows', async () => (await page.locator('#peers tbody tr').count()) === 5);
  for (const p of peers) {
    const row = page.locator(`#peers tbody tr[data-peer-id="${p.id}"]`);
    assert.equal(await row.count(), 1, p.name);
    const cells = await row.locator('td').allTextContents();
    assert.equal(cells[0], p.id);
    assert.equal(cells[3], '480p');
    assert.match(cells[5]!, /bit\/s$/, 'upload capacity');
    assert.match(cells[6]!, /B$/, 'bytes uploaded');
    assert.match(cells[7]!, /^\d+\.\d s$/);
  }
  // The relay fed others from the start: it has uploaded the most.
  const uploaded = await page
    .locator(`#peers tbody tr[data-peer-id="${peers[0]!.id}"] td`)
    .nth(6)
    .textContent();
  assert.match(uploaded ?? '', /^\d+(\.\d)? (kB|MB|GB)$/);
  const relayCells = await page
    .locator(`#peers tbody tr[data-peer-id="${peers[0]!.id}"] td`)
    .allTextContents();
  assert.deepEqual(relayCells.slice(1, 5), ['node', 'relay', '480p', 'open']);
});

test('screenshots: desktop and phone', async () => {
  await page.waitForTimeout(1500); // a few more samples on the charts
  await page.screenshot({ path: path.join(SHOTS, 'dashboard-desktop.png'), fullPage: true });
  const phone = await browser.newPage({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
  });
  await phone.goto(`${url}/dashboard`);
  await eventually('phone: data', async () => (await phone.locator('#overlay .peer').count()) === 5);
  await eventually('phone: charts', async () => (await phone.locator('.chart[data-samples]').count()) === 3);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways on a phone by ${overflow}px`);
  await phone.screenshot({ path: path.join(SHOTS, 'dashboard-phone.png'), fullPage: true });
  await phone.close();
  assert.ok(fs.statSync(path.join(SHOTS, 'dashboard-desktop.png')).size > 10_000);
});

test('a title with markup is shown as text, nothing injected', async () => {
  const options = await page.locator('#channel-select option').allTextContents();
  assert.ok(
    options.some((o) => o.startsWith(XSS_TITLE)),
    `options ${JSON.stringify(options)}`,
  );
  await page.selectOption('#channel-select', 'xss');
  await eventually('the xss channel', async () => (await text(page, '#channel-title')) === XSS_TITLE);
  assert.equal(await page.locator('img').count(), 0);
  assert.equal(await page.locator('#channel-title *').count(), 0);
  assert.equal(await text(page, '#kpi-viewers'), '0');
  assert.match(page.url(), /#xss$/);
  await page.waitForTimeout(300);
  assert.deepEqual(dialogs, []);
  await page.selectOption('#channel-select', 'demo');
  await eventually('back to demo', async () => (await text(page, '#channel-title')) === 'Dashboard demo');
});

test('a peer leaving updates viewers, the overlay and the table', async () => {
  const carol = peers[4]!;
  const ack = await carol.socket.emitWithAck('leave');
  assert.ok(ack.ok);
  carol.gone = true;
  carol.socket.disconnect();
  await eventually('3 viewers', async () => (await text(page, '#kpi-viewers')) === '3');
  await eventually('4 rows', async () => (await page.locator('#peers tbody tr').count()) === 4);
  assert.equal(await page.locator(`#peers tbody tr[data-peer-id="${carol.id}"]`).count(), 0);
  await eventually('4 nodes', async () => (await page.locator('#overlay .peer').count()) === 4);
  assert.match((await text(page, '#channel-select')) ?? '', /Dashboard demo · 3 viewers/);
});

test('no script errors and no CSP violations so far', () => {
  assert.deepEqual(pageErrors, []);
});

test('says so when the tracker goes away', async () => {
  if (ticker) clearInterval(ticker);
  ticker = undefined;
  await tracker.destroy();
  await eventually('the unreachable state', async () =>
    ((await text(page, '#banner')) ?? '').startsWith('Tracker unreachable — retrying'),
  );
  assert.equal(await text(page, '#conn-text'), 'tracker unreachable — retrying');
  // The last data stays, dimmed.
  assert.equal(await text(page, '#channel-title'), 'Dashboard demo');
  assert.ok(await page.locator('#channel.stale').isVisible());
});

test('an empty tracker says "no channels yet"; a capped overlay says how many it shows', async () => {
  const small = new Tracker({ statsIntervalMs: 300, stats: { ...DEFAULT_STATS, maxSnapshotPeers: 2 } });
  await small.listen(0, '127.0.0.1');
  const p = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  try {
    // While the socket.io client is still loading, the page says it is connecting.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    await p.route('**/socket.io/socket.io.js', async (route) => {
      await held;
      await route.continue();
    });
    await p.goto(`${small.url}/dashboard`, { waitUntil: 'commit' });
    await eventually(
      'connecting',
      async () => (await p.locator('#conn-text').textContent()) === 'connecting…',
    );
    assert.match((await p.locator('#banner').textContent()) ?? '', /Connecting/);
    release();
    await eventually('no channels yet', async () => p.locator('#empty').isVisible());
    assert.match((await p.locator('#empty').textContent()) ?? '', /No channels yet/);

    await source(small.url, 'demo', 'Capped');
    await eventually(
      'the channel appears',
      async () => (await p.locator('#channel-title').textContent()) === 'Capped',
    );
    assert.equal(await p.locator('#empty').isVisible(), false);
    for (const kind of ['node', 'browser', 'browser'] as const)
      await join(small.url, kind, { kind, uploadKbps: 1000 }, 0);
    await eventually(
      'the cap note',
      async () => (await p.locator('#overlay-count').textContent()) === 'showing 2 of 3 peers',
    );
    assert.equal(await p.locator('#overlay .peer').count(), 2);
  } finally {
    await p.close();
    await small.destroy();
  }
});
