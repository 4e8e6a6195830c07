/**
 * The NAT lab (issue 6): a small internet in network namespaces (see lab.ts) with our STUN server,
 * coturn, the tracker and a test-pattern source on the public side, and hosts behind NATs of
 * different behaviour. Real processes everywhere: `peertv` commands, coturn, Chromium, wrtc.
 * Needs root (it builds namespaces and iptables rules); skipped with the reason otherwise.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  LAB_HOSTS,
  LAB_CHANNEL,
  LAB_STUN_PORT,
  LAB_TRACKER_URL,
  NAT_TYPE_OF,
  NatLab,
  PUBLIC_IP,
  ROUTE_LINE,
  ROUTE_SETTLE_MS,
  TURN_SEND_FAILED,
  joinedPeerId,
  natLabUnavailable,
  routesTo,
  startLabServices,
  startLabViewer,
  startupS,
  type LabServices,
  type Running,
} from './lab.ts';

const unavailable = natLabUnavailable();

/** The route a peer reports last for its link to `remote` (ICE may switch pairs after connecting). */
const finalRoute = (p: Running, remote: Running) => routesTo(p, joinedPeerId(remote)).at(-1);

/** Largest "from peers N%" a viewer's status lines showed. */
const bestP2pShare = (p: Running) =>
  Math.max(0, ...[...p.output.matchAll(/from peers (\d+)%/g)].map((m) => Number(m[1])));

describe('NAT lab', { skip: unavailable ?? false, timeout: 480_000 }, () => {
  let lab: NatLab;
  let services: LabServices;

  before(async () => {
    lab = await NatLab.create([...LAB_HOSTS]);
    services = await startLabServices(lab);
  });

  after(async () => {
    await services?.stop();
    await lab?.destroy();
  });

  const startViewer = (host: string, extra: string[]) =>
    startLabViewer(lab, host, ['--status-interval', '1', ...extra]);

  test('every host detects its NAT type (peertv nat, RFC 5780 against our server)', async () => {
    const expected = LAB_HOSTS.map((h) => [h.name, NAT_TYPE_OF[h.nat], lab.host(h.name).wanIp] as const);
    const results = await Promise.all([
      // Five `peertv nat` at once: allow a loaded machine time to start them (tsx) and run the tests.
      ...expected.map(([h]) => lab.peertv(lab.host(h).ns, ['nat', '--server', PUBLIC_IP, '--json'], 120_000)),
      // The public host itself is not behind a NAT (its own alternate address is a "local" one too).
      lab.peertv(lab.pubNs, ['nat', '--server', PUBLIC_IP, '--json'], 120_000),
    ]);
    const got = results.map((r) => {
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as { natType: string; mapped?: { address: string } };
    });
    expected.forEach(([h, type, wan], i) => {
      assert.equal(got[i]!.natType, type, `host ${h}`);
      assert.equal(got[i]!.mapped?.address, wan, `host ${h}'s reflexive address is its NAT's`);
    });
    assert.equal(got[expected.length]!.natType, 'open', 'the public host');
  });

  test("coturn's clients against our STUN server: reflexive address and RFC 5780 behaviour tests", async () => {
    // B's NAT lets the CHANGE-REQUEST answers through, so stunclient completes all its tests.
    const sc = await lab.run(lab.host('B').ns, 'turnutils_stunclient', [
      '-p',
      String(LAB_STUN_PORT),
      PUBLIC_IP,
    ]);
    assert.equal(sc.code, 0, sc.stdout + sc.stderr);
    assert.match(
      sc.stdout,
      new RegExp(`UDP reflexive addr: ${lab.host('B').wanIp.replace(/\./g, '\\.')}:\\d+`),
    );
    const discovery = async (host: string) => {
      const r = await lab.run(lab.host(host).ns, 'turnutils_natdiscovery', ['-m', '-f', PUBLIC_IP], 60_000);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      return r.stdout;
    };
    const [a, b, c] = await Promise.all([discovery('A'), discovery('B'), discovery('C')]);
    assert.match(a, /NAT with Endpoint Independent Mapping/);
    assert.match(a, /NAT with Address and Port Dependent Filtering/);
    assert.match(b, /NAT with Endpoint Independent Mapping/);
    assert.match(b, /NAT with Endpoint Independent Filtering/);
    assert.match(c, /NAT with Address and Port Dependent Mapping/);
  });

  test('Chromium behind a NAT gathers a server-reflexive candidate from our STUN server', async () => {
    const r = await lab.run(
      lab.host('A').ns,
      process.execPath,
      ['--import', 'tsx', 'test/natlab/chromium-candidates.ts', `${PUBLIC_IP}:${LAB_STUN_PORT}`],
      60_000,
    );
    assert.equal(r.code, 0, r.stderr);
    const candidates = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as string[];
    const srflx = candidates.filter((c) => / typ srflx /.test(c));
    assert.ok(
      srflx.some((c) => c.split(' ')[4] === lab.host('A').wanIp),
      `a srflx candidate with A's public address; got:\n${candidates.join('\n')}`,
    );
    assert.ok(
      candidates.some((c) => / typ host /.test(c) && c.includes(lab.host('A').ip)),
      'its host candidate',
    );
  });

  test('Chromium learns its NAT type through ICE against our STUN server’s two addresses, and the tracker holds it', async () => {
    const probe = (ns: string) =>
      lab.run(
        ns,
        process.execPath,
        ['--import', 'tsx', 'test/natlab/chromium-nat.ts', LAB_TRACKER_URL, LAB_CHANNEL],
        120_000,
      );
    // One browser at a time: each is a whole Chromium on a 2-core machine.
    const got: Record<string, { engine: string; tracker: string | null }> = {};
    for (const [name, ns] of [
      ['A', lab.host('A').ns],
      ['C', lab.host('C').ns],
      ['B', lab.host('B').ns],
      ['public', lab.pubNs],
    ] as const) {
      const r = await probe(ns);
      assert.equal(r.code, 0, r.stderr);
      got[name] = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
        engine: string;
        tracker: string | null;
      };
    }
    const want = {
      A: 'port-restricted-cone',
      C: 'symmetric',
      // A browser cannot test filtering: a full cone looks like the most restrictive cone.
      B: 'port-restricted-cone',
      // No NAT, but a page without camera permission shows no host candidate to compare the reflexive
      // address with: a cone too (cautious; `open` shows where host candidates are visible, as on
      // loopback in test/player/swarm.test.ts).
      public: 'port-restricted-cone',
    };
    for (const [name, type] of Object.entries(want))
      assert.deepEqual(got[name], { engine: type, tracker: type }, `${name}: ${JSON.stringify(got)}`);
  });

  test('two peers behind port-restricted cone NATs connect directly (server-reflexive, no relay)', async () => {
    const a = startViewer('A', ['--stun', `${PUBLIC_IP}:${LAB_STUN_PORT}`]);
    const e = startViewer('E', ['--stun', `${PUBLIC_IP}:${LAB_STUN_PORT}`]);
    try {
      await a.waitFor(/^nat: port-restricted-cone /m, 30_000, "A's NAT type");
      await e.waitFor(/^nat: port-restricted-cone /m, 30_000, "E's NAT type");
      await Promise.all([a.waitFor(ROUTE_LINE, 60_000, 'a link'), e.waitFor(ROUTE_LINE, 60_000, 'a link')]);
      // Both port-restricted: checks must punch holes in both NATs; a relayed pair may win the race at
      // first, and ICE then moves to the direct pair. The engine reads the route until 4 s after open.
      await until(
        () => finalRoute(a, e)?.relayed === false && finalRoute(e, a)?.relayed === false,
        15_000,
        'a direct route at both ends',
      ).catch(() => {});
      const ae = finalRoute(a, e);
      const ea = finalRoute(e, a);
      assert.ok(ae && ea, `both ends report the link\n${a.output}\n${e.output}`);
      for (const r of [ae, ea]) {
        assert.equal(
          r.relayed,
          false,
          `direct, not through TURN: ${JSON.stringify(r)}\n${a.output}\n${e.output}`,
        );
        // Behind a NAT the other end is only reachable at its NAT's address: server- or peer-reflexive.
        assert.ok(['srflx', 'prflx'].includes(r.remoteType), `remote candidate ${r.remoteType}`);
      }
      // And segments flow over it: the viewer that is not in the first tier plays from its peer.
      await until(() => bestP2pShare(a) > 0 || bestP2pShare(e) > 0, 30_000, 'segments from the peer');
    } finally {
      await Promise.all([a.stop(), e.stop()]);
    }
  });

  test('two peers behind symmetric NATs connect through TURN (coturn, REST API credentials from the tracker)', async () => {
    const turnFrom = services.turn?.output.length ?? 0;
    const turnOutput = () => services.turn?.output.slice(turnFrom) ?? '';
    const c = startViewer('C', ['--stun', `${PUBLIC_IP}:${LAB_STUN_PORT}`]);
    const d = startViewer('D', ['--stun', `${PUBLIC_IP}:${LAB_STUN_PORT}`]);
    try {
      await c.waitFor(/^nat: symmetric /m, 30_000, "C's NAT type");
      await d.waitFor(/^nat: symmetric /m, 30_000, "D's NAT type");
      await Promise.all([c.waitFor(ROUTE_LINE, 60_000, 'a link'), d.waitFor(ROUTE_LINE, 60_000, 'a link')]);
      // Give ICE the engine's 4 s of route checks: no direct pair can ever work between these two.
      await new Promise((r) => setTimeout(r, ROUTE_SETTLE_MS));
      const cd = finalRoute(c, d);
      const dc = finalRoute(d, c);
      assert.ok(cd && dc, `both ends report the link\n${c.output}\n${d.output}`);
      assert.equal(cd.relayed, true, JSON.stringify(cd));
      assert.equal(dc.relayed, true, JSON.stringify(dc));
      await until(
        () => bestP2pShare(c) > 0 || bestP2pShare(d) > 0,
        60_000,
        () =>
          `segments over the relay\n${c.output.slice(-3000)}\n${d.output.slice(-3000)}\ncoturn:\n${turnOutput().slice(-1000)}`,
      );
      // coturn closes an allocation whose relayed send failed, and the link it carried goes dead.
      assert.doesNotMatch(
        turnOutput(),
        TURN_SEND_FAILED,
        'coturn failed to relay (and closed that allocation)',
      );
    } finally {
      await Promise.all([c.stop(), d.stop()]);
    }
  });

  test('a pair that cannot connect at all (symmetric NATs, TURN blocked) plays from the origin within 5 s', async () => {
    for (const h of ['C', 'D']) lab.blockTurn(h, true);
    const c = startViewer('C', ['--nat-type', 'symmetric']);
    const d = startViewer('D', ['--nat-type', 'symmetric']);
    try {
      const startups = await Promise.all([c, d].map((p) => startupS(p)));
      for (const s of startups) assert.ok(s <= 5, `playing after ${s} s`);
      // The engine's connect timeout (10 s) passes; the link never comes up and playback goes on.
      await until(() => statusCount(c) >= 13 && statusCount(d) >= 13, 40_000, '13 s of status lines');
      assert.deepEqual([...(c.output + d.output).matchAll(ROUTE_LINE)], [], 'no link ever connected');
      for (const p of [c, d]) {
        const last =
          p.output
            .trim()
            .split('\n')
            .filter((l) => l.startsWith('viewer '))
            .at(-1) ?? '';
        assert.match(last, /playing .* stalls 0 /, `still playing without stalls: ${last}`);
        assert.match(last, /from peers 0%/);
      }
    } finally {
      await Promise.all([c.stop(), d.stop()]);
      for (const h of ['C', 'D']) lab.blockTurn(h, false);
    }
  });
});

const statusCount = (p: Running) => (p.output.match(/^viewer /gm) ?? []).length;

/** Waits until `fn()` holds; `what` (a function: read when it times out, e.g. the viewers' output). */
async function until(fn: () => boolean, timeoutMs: number, what: string | (() => string)): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
