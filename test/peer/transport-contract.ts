/**
 * The `Transport` contract (peer/core/seams.ts), as one suite that every implementation runs by
 * supplying only `setup()` and `teardown()` (the way libp2p runs its transport compliance tests against
 * every transport). `transport-contract.test.ts` runs it for `MemoryNetwork` and `SimplePeerTransport`.
 *
 * The suite creates the links itself, `a` (the initiator) and `b`, and relays their signals the way the
 * tracker does: asynchronously, through JSON and the tracker's schema. Every wait is event-driven with
 * a generous timeout; the only fixed delays are quiet periods in which something must NOT happen
 * (under load they check less, they never fail spuriously).
 */
import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_MESSAGE_BYTES, signalDataSchema, type SignalData } from '../../protocol/index.ts';
import {
  DESTROYED,
  REMOTE_CLOSED,
  type LinkRoute,
  type PeerLink,
  type Transport,
} from '../../peer/core/seams.ts';
import { waitFor } from '../helpers/wait-for.ts';

export interface TransportFixture {
  /** The transport of peer `a` (it creates links with `localId: 'a'`). */
  a: Transport;
  /** The transport of peer `b`. */
  b: Transport;
  /** The `drain` threshold the transports were configured with (bytes). */
  lowWaterMarkBytes: number;
  /**
   * How long to watch for something that must not happen (a `connect` after a destroy, a second
   * `close`) before concluding it did not (ms). Long enough for this transport to connect on an idle
   * machine; on a loaded one the check is weaker, never flaky.
   */
  quietMs: number;
  /** Extra checks on a connected link's route, when the transport reports one. */
  checkRoute?(route: LinkRoute | undefined): void;
}

export interface TransportContractOptions {
  setup(): TransportFixture | Promise<TransportFixture>;
  teardown(fixture: TransportFixture): void | Promise<void>;
}

/** Every wait for an event: generous, for a loaded 2-core machine. */
const WAIT_MS = 60_000;
const TEST_TIMEOUT_MS = 180_000;

type Side = 'a' | 'b';

/** Everything one link emitted, in order. */
interface Recorder {
  /** Event names in emission order ('connect', 'data', 'drain', 'close', 'signal'). */
  events: string[];
  data: Uint8Array[];
  closes: string[];
  connects: number;
  drains: { bufferedAmount: number }[];
  signals: SignalData[];
  /** Events emitted after `close` (must stay empty). */
  afterClose: string[];
  /** Whether `connected` was true inside the `connect` listener. */
  connectedAtConnect: boolean[];
}

function record(link: PeerLink): Recorder {
  const r: Recorder = {
    events: [],
    data: [],
    closes: [],
    connects: 0,
    drains: [],
    signals: [],
    afterClose: [],
    connectedAtConnect: [],
  };
  const log = (event: string): void => {
    if (r.closes.length > 0) r.afterClose.push(event);
    r.events.push(event);
  };
  link.on('connect', () => {
    log('connect');
    r.connects++;
    r.connectedAtConnect.push(link.connected);
  });
  link.on('data', (bytes) => {
    log('data');
    r.data.push(bytes);
  });
  link.on('drain', () => {
    log('drain');
    r.drains.push({ bufferedAmount: link.bufferedAmount });
  });
  link.on('signal', (s) => {
    log('signal');
    r.signals.push(s);
  });
  link.on('close', (reason) => {
    log('close');
    r.closes.push(reason);
  });
  return r;
}

interface Pair {
  a: PeerLink;
  b: PeerLink;
  ra: Recorder;
  rb: Recorder;
}

interface RelayHooks {
  /** Called after a signal from `from` was fed to the other end. */
  afterDeliver?(from: Side, data: SignalData): void;
  /** Whether to relay signals at all (default true). */
  relay?: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when `cond()` holds, checked after every event of `link` (event-driven, no polling). */
function until(link: PeerLink, cond: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
  if (cond()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const events = ['connect', 'data', 'drain', 'close', 'signal'] as const;
    const check = (): void => {
      if (!cond()) return;
      done();
      resolve();
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${timeoutMs} ms waiting until ${what}`));
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      for (const e of events) link.off(e, check);
    };
    for (const e of events) link.on(e, check);
  });
}

/** Message `i` of direction `d` (0: a → b, 1: b → a): every byte is a function of i, d and its index. */
function pattern(i: number, d: number, size: number): Uint8Array {
  const m = new Uint8Array(size);
  for (let j = 0; j < size; j++) m[j] = (i * 131 + j * 7 + d * 17) & 0xff;
  return m;
}

function checkPattern(bytes: Uint8Array, i: number, d: number, size: number): void {
  assert.ok(bytes instanceof Uint8Array, `message ${i} is a Uint8Array`);
  assert.equal(bytes.byteLength, size, `message ${i} has its size (in order, whole)`);
  for (let j = 0; j < size; j++)
    if (bytes[j] !== ((i * 131 + j * 7 + d * 17) & 0xff)) assert.fail(`message ${i} byte ${j} differs`);
}

/** Varied sizes from 1 byte to the maximum, the extremes first. */
function sizes(n: number): number[] {
  const out = [1, MAX_MESSAGE_BYTES, 2, MAX_MESSAGE_BYTES - 1, 3, 4, 5];
  for (let i = out.length; i < n; i++) out.push(((i * 7919 + i * i * 104_729) % MAX_MESSAGE_BYTES) + 1);
  return out.slice(0, n);
}

/** Sends all `messages`, waiting for `drain` whenever more than `highWaterBytes` are buffered. */
async function sendPaced(link: PeerLink, messages: Uint8Array[], highWaterBytes: number): Promise<void> {
  for (const m of messages) {
    if (link.bufferedAmount > highWaterBytes) await waitFor(link, 'drain', WAIT_MS);
    link.send(m);
  }
}

export function transportContract(name: string, opts: TransportContractOptions): void {
  describe(`Transport contract: ${name}`, { timeout: TEST_TIMEOUT_MS }, () => {
    let fx: TransportFixture;
    let links: PeerLink[] = [];

    beforeEach(async () => {
      fx = await opts.setup();
      links = [];
    });

    afterEach(async () => {
      for (const l of links) l.destroy('test-teardown');
      await opts.teardown(fx);
    });

    /** Creates `a` (initiator) and `b`, their signals relayed as the tracker does. */
    function pair(hooks: RelayHooks = {}): Pair {
      const a = fx.a.createLink({ localId: 'a', remoteId: 'b', initiator: true, iceServers: [] });
      const b = fx.b.createLink({ localId: 'b', remoteId: 'a', initiator: false, iceServers: [] });
      links.push(a, b);
      const p = { a, b, ra: record(a), rb: record(b) };
      if (hooks.relay !== false) {
        const relay = (from: Side, to: PeerLink) => (s: SignalData) => {
          // Through the wire format and the tracker's validation, a turn of the event loop later.
          const data = signalDataSchema.parse(JSON.parse(JSON.stringify(s)));
          setImmediate(() => {
            to.signal(data);
            hooks.afterDeliver?.(from, data);
          });
        };
        a.on('signal', relay('a', b));
        b.on('signal', relay('b', a));
      }
      return p;
    }

    async function connectedPair(): Promise<Pair> {
      const p = pair();
      await Promise.all([waitFor(p.a, 'connect', WAIT_MS), waitFor(p.b, 'connect', WAIT_MS)]);
      return p;
    }

    /** Checks that both ends closed exactly once with these reasons, and were silent afterwards. */
    async function closedOnce(p: Pair, reasons: { a: string; b: string }): Promise<void> {
      await until(p.a, () => p.ra.closes.length > 0, 'a closes');
      await until(p.b, () => p.rb.closes.length > 0, 'b closes');
      await sleep(fx.quietMs);
      for (const l of [p.a, p.b]) {
        l.destroy('once more'); // idempotent on either end, whoever closed first
        assert.equal(l.connected, false);
        assert.equal(l.bufferedAmount, 0);
        l.destroy('once more'); // idempotent on either end, whoever closed first
        if (l.route) assert.equal(await l.route(), undefined, 'no route once closed');
      }
      assert.deepEqual(p.ra.closes, [reasons.a]);
      assert.deepEqual(p.rb.closes, [reasons.b]);
      assert.deepEqual(p.ra.afterClose, [], 'a is silent after close');
      assert.deepEqual(p.rb.afterClose, [], 'b is silent after close');
    }

    test('connect: the initiator signals first; both ends connect once; remoteId', async () => {
      const p = pair({ relay: false });
      assert.equal(p.a.remoteId, 'b');
      assert.equal(p.b.remoteId, 'a');
      await waitFor(p.a, 'signal', WAIT_MS);
      await sleep(fx.quietMs);
      assert.deepEqual(p.rb.signals, [], 'the responder waits for the offer');
      assert.ok(p.ra.signals.every((s) => signalDataSchema.safeParse(s).success));
      // Relay from now on, including what the initiator said so far.
      const relay = (to: PeerLink) => (s: SignalData) =>
        setImmediate(() => to.signal(signalDataSchema.parse(JSON.parse(JSON.stringify(s)))));
      for (const s of p.ra.signals) relay(p.b)(s);
      p.a.on('signal', relay(p.b));
      p.b.on('signal', relay(p.a));
      await Promise.all([waitFor(p.a, 'connect', WAIT_MS), waitFor(p.b, 'connect', WAIT_MS)]);
      assert.ok(p.a.connected && p.b.connected);
      assert.deepEqual(p.ra.connectedAtConnect, [true]);
      assert.deepEqual(p.rb.connectedAtConnect, [true]);
      for (const l of [p.a, p.b])
        if (l.route) {
          const route = await l.route();
          if (route) {
            assert.ok(['host', 'srflx', 'prflx', 'relay', 'unknown'].includes(route.local));
            assert.ok(['host', 'srflx', 'prflx', 'relay', 'unknown'].includes(route.remote));
            assert.equal(route.relayed, route.local === 'relay' || route.remote === 'relay');
          }
          fx.checkRoute?.(route);
        }
      await sleep(fx.quietMs);
      assert.equal(p.ra.connects, 1);
      assert.equal(p.rb.connects, 1);
      assert.deepEqual(p.ra.closes, []);
      assert.deepEqual(p.rb.closes, []);
    });

    test('before connect: not connected, nothing buffered, send throws, no route', async () => {
      const p = pair();
      for (const l of [p.a, p.b]) {
        assert.equal(l.connected, false);
        assert.equal(l.bufferedAmount, 0);
        assert.throws(() => l.send(new Uint8Array(10)), /not connected/);
        if (l.route) assert.equal(await l.route(), undefined);
      }
      await Promise.all([waitFor(p.a, 'connect', WAIT_MS), waitFor(p.b, 'connect', WAIT_MS)]);
      assert.deepEqual(p.ra.data, []);
      assert.deepEqual(p.rb.data, [], 'a send that threw sent nothing');
    });

    test('send: oversize and non-binary messages throw TypeError, before, while and after connected', async () => {
      const p = pair();
      const misuse = (l: PeerLink): void => {
        assert.throws(() => l.send(new Uint8Array(MAX_MESSAGE_BYTES + 1)), TypeError);
        for (const bad of ['hello', new ArrayBuffer(4), [1, 2, 3], new DataView(new ArrayBuffer(4)), null])
          assert.throws(() => l.send(bad as unknown as Uint8Array), TypeError);
      };
      misuse(p.a);
      misuse(p.b);
      await Promise.all([waitFor(p.a, 'connect', WAIT_MS), waitFor(p.b, 'connect', WAIT_MS)]);
      misuse(p.a);
      misuse(p.b);
      p.a.send(pattern(0, 0, MAX_MESSAGE_BYTES));
      await until(p.b, () => p.rb.data.length === 1, 'the largest message arrives');
      checkPattern(p.rb.data[0]!, 0, 0, MAX_MESSAGE_BYTES);
      p.a.destroy();
      await until(p.b, () => p.rb.closes.length > 0, 'b closes');
      misuse(p.a);
      misuse(p.b);
    });

    test('messages of 1 byte to the maximum arrive whole and in order, both ways at once', async () => {
      const p = await connectedPair();
      const n = 160;
      const lengths = sizes(n);
      const ab = lengths.map((s, i) => pattern(i, 0, s));
      const ba = lengths.map((s, i) => pattern(i, 1, s));
      const highWater = 4 * fx.lowWaterMarkBytes + MAX_MESSAGE_BYTES;
      await Promise.all([sendPaced(p.a, ab, highWater), sendPaced(p.b, ba, highWater)]);
      await until(p.b, () => p.rb.data.length >= n, 'b received everything');
      await until(p.a, () => p.ra.data.length >= n, 'a received everything');
      p.rb.data.forEach((m, i) => checkPattern(m, i, 0, lengths[i]!));
      p.ra.data.forEach((m, i) => checkPattern(m, i, 1, lengths[i]!));
      for (const r of [p.ra, p.rb])
        assert.deepEqual(
          r.events.filter((e) => e === 'connect' || e === 'data').slice(0, 2),
          ['connect', 'data'],
          'connect precedes data',
        );
      assert.equal(p.ra.data.length, n);
      assert.equal(p.rb.data.length, n);
    });

    test("a message sent at its sender's connect arrives after the receiver's connect", async () => {
      const p = pair();
      // Each end sends the moment it connects, which may be before the other end's connect event.
      p.a.on('connect', () => p.a.send(pattern(0, 0, 100)));
      p.b.on('connect', () => p.b.send(pattern(0, 1, 100)));
      await until(p.b, () => p.rb.data.length === 1, 'b receives');
      await until(p.a, () => p.ra.data.length === 1, 'a receives');
      checkPattern(p.rb.data[0]!, 0, 0, 100);
      checkPattern(p.ra.data[0]!, 0, 1, 100);
      for (const r of [p.ra, p.rb])
        assert.deepEqual(
          r.events.filter((e) => e === 'connect' || e === 'data'),
          ['connect', 'data'],
        );
    });

    test('send copies: changing the buffer after send, views at an offset and Buffers', async () => {
      const p = await connectedPair();
      const buf = new Uint8Array(100).fill(1);
      p.a.send(buf);
      buf.fill(2); // after the send: must not change what arrives
      const backing = new Uint8Array(64).fill(9);
      backing.set([3, 4, 5], 13);
      p.a.send(backing.subarray(13, 16)); // a view: only its bytes go
      const nodeBuffer = Buffer.alloc(50, 6);
      p.a.send(nodeBuffer);
      nodeBuffer.fill(7);
      await until(p.b, () => p.rb.data.length === 3, 'three messages arrive');
      const [m0, m1, m2] = p.rb.data;
      assert.deepEqual([...m0!], new Array(100).fill(1));
      assert.deepEqual([...m1!], [3, 4, 5]);
      assert.deepEqual([...m2!], new Array(50).fill(6));
      // What arrived belongs to the receiver: changing it touches neither the sender nor other messages.
      m0!.fill(0);
      assert.deepEqual([...m2!], new Array(50).fill(6));
      assert.deepEqual([...nodeBuffer], new Array(50).fill(7));
    });

    test('backpressure: bufferedAmount grows past the low-water mark, then one drain at or below it', async () => {
      const p = await connectedPair();
      const lwm = fx.lowWaterMarkBytes;
      const target = 4 * lwm + MAX_MESSAGE_BYTES;
      let maxBuffered = 0;
      let sent = 0;
      // A few MiB in one go, faster than any link drains (no event runs meanwhile).
      while (sent < 32 || (maxBuffered <= target && sent < 64)) {
        p.a.send(pattern(sent, 0, MAX_MESSAGE_BYTES));
        sent++;
        maxBuffered = Math.max(maxBuffered, p.a.bufferedAmount);
      }
      assert.ok(maxBuffered > lwm, `bufferedAmount grew past ${lwm} (max ${maxBuffered})`);
      assert.deepEqual(p.ra.drains, [], 'no drain while the sender kept the event loop');
      await waitFor(p.a, 'drain', WAIT_MS);
      assert.ok(p.a.bufferedAmount <= lwm, `at drain, ${p.a.bufferedAmount} ≤ ${lwm}`);
      await until(p.b, () => p.rb.data.length >= sent, 'everything arrives');
      p.rb.data.forEach((m, i) => checkPattern(m, i, 0, MAX_MESSAGE_BYTES));
      // Under the low-water mark from now on: no more drain.
      p.a.send(pattern(sent, 0, 10));
      await until(p.b, () => p.rb.data.length > sent, 'a small message arrives');
      p.b.send(new Uint8Array(1));
      await until(p.a, () => p.ra.data.length === 1, 'a round trip');
      assert.equal(p.ra.drains.length, 1, 'drain fired once');
      assert.deepEqual(p.rb.drains, [], 'the receiver never drains');
    });

    for (const closer of ['a', 'b'] as const) {
      const other = closer === 'a' ? 'b' : 'a';
      test(`close by the ${closer === 'a' ? 'initiator' : 'responder'}: local reason at once, ${REMOTE_CLOSED} remotely, once each`, async () => {
        const p = await connectedPair();
        const link = p[closer];
        const rec = closer === 'a' ? p.ra : p.rb;
        link.destroy('test-close');
        assert.deepEqual(rec.closes, ['test-close'], 'the local close is synchronous');
        assert.equal(link.connected, false);
        assert.equal(link.bufferedAmount, 0);
        link.destroy('again');
        link.send(new Uint8Array(5)); // ignored once closed
        link.signal({ type: 'offer', sdp: 'v=0' }); // ignored once closed
        await closedOnce(p, { [closer]: 'test-close', [other]: REMOTE_CLOSED } as { a: string; b: string });
      });
    }

    test(`destroy is idempotent: close once, default reason "${DESTROYED}"; both ends at once`, async () => {
      const p = await connectedPair();
      p.a.destroy();
      p.a.destroy('second');
      p.a.destroy();
      assert.deepEqual(p.ra.closes, [DESTROYED]);
      // b destroyed too before it heard of it: its own reason, not remote-closed.
      p.b.destroy('mine');
      await closedOnce(p, { a: DESTROYED, b: 'mine' });
    });

    test('data sent before a destroy arrives as an in-order prefix, then the remote closes', async () => {
      const p = await connectedPair();
      const n = 20;
      for (let i = 0; i < n; i++) p.a.send(pattern(i, 0, 1000 + i));
      p.a.destroy('done');
      await closedOnce(p, { a: 'done', b: REMOTE_CLOSED });
      assert.ok(p.rb.data.length <= n);
      p.rb.data.forEach((m, i) => checkPattern(m, i, 0, 1000 + i));
    });

    test('destroy before any signal: close once, no signal, no connect; the other end hears nothing', async () => {
      const p = pair();
      p.a.destroy('early');
      assert.deepEqual(p.ra.closes, ['early']);
      await sleep(fx.quietMs);
      assert.deepEqual(p.ra.events, ['close']);
      assert.deepEqual(p.rb.events, []);
      assert.equal(p.b.connected, false);
    });

    test('the responder destroyed once it got the offer: neither end connects', async () => {
      let destroyed = false;
      const p = pair({
        afterDeliver: (from, data) => {
          if (from === 'a' && !destroyed && 'type' in data && data.type === 'offer') {
            destroyed = true;
            p.b.destroy('refused');
          }
        },
      });
      await until(p.b, () => p.rb.closes.length > 0, 'b closes');
      await sleep(fx.quietMs);
      assert.deepEqual(p.rb.events, ['close'], 'no answer, no connect after the destroy');
      assert.deepEqual(p.rb.closes, ['refused']);
      // The initiator is not necessarily told (its owner's connect timeout handles that): it never
      // connects, and closes at most once.
      assert.equal(p.ra.connects, 0);
      assert.equal(p.a.connected, false);
      assert.ok(p.ra.closes.length <= 1);
    });

    test('the initiator destroyed once it got the answer: it never connects; the responder closes or never connects', async () => {
      let destroyed = false;
      const p = pair({
        afterDeliver: (from, data) => {
          if (from === 'b' && !destroyed && 'type' in data && data.type === 'answer') {
            destroyed = true;
            p.a.destroy('changed-mind');
          }
        },
      });
      await until(p.a, () => p.ra.closes.length > 0, 'a closes');
      await sleep(fx.quietMs);
      assert.deepEqual(p.ra.closes, ['changed-mind']);
      assert.equal(p.ra.connects, 0);
      assert.deepEqual(p.ra.afterClose, []);
      // A responder that won the race and connected hears of the close like any other.
      if (p.rb.connects > 0) await until(p.b, () => p.rb.closes.length > 0, 'b closes');
      assert.ok(p.rb.connects <= 1 && p.rb.closes.length <= 1);
      if (p.rb.connects === 1) assert.deepEqual(p.rb.closes, [REMOTE_CLOSED]);
      assert.deepEqual(p.rb.afterClose, []);
    });
  });
}
