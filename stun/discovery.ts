/**
 * RFC 5780 NAT behaviour discovery over UDP (§4.3 mapping, §4.4 filtering) against a server with an
 * alternate address (see StunServer's `alternate` option), and the mapping of the result to the
 * tracker's `NatType`.
 *
 * One local socket does every test. Each transaction retransmits with RFC 8489 §6.2.1 timing (RTO
 * 500 ms, doubling, at most `retries` retransmissions) until `timeoutMs` has passed. Every datagram
 * is validated (parses, success class, Binding, our transaction id, an XOR-MAPPED-ADDRESS, and for
 * CHANGE-REQUEST tests a source that really changed); anything else is ignored, as if lost. Hostile
 * responses therefore never throw: they cost at most a transaction timeout. An error response
 * (e.g. 400 "change request not supported") ends its transaction at once and makes the behaviour
 * 'unknown'.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import createDebug from 'debug';
import type { NatType } from '../protocol/index.ts';
import {
  STUN_ATTR,
  STUN_METHOD,
  encodeStunMessage,
  findAttribute,
  parseStunMessage,
  randomTransactionId,
  unmapIpv4,
  type StunAddress,
  type StunAttribute,
} from './message.ts';

const debug = createDebug('peertv:stun:discovery');

export interface NatDiscoveryOptions {
  /** The RFC 5780 server's primary address (an IP address). */
  server: { host: string; port: number };
  /** Local address to bind (default: the wildcard address of the server's family). */
  localAddress: string;
  /** Per transaction: give up after this long without a valid answer. */
  timeoutMs: number;
  /** Retransmissions per transaction (RFC 8489 Rc - 1). */
  retries: number;
  /** Initial retransmission timeout (RFC 8489 RTO), doubled after each retransmission. */
  rtoMs: number;
}

export const DEFAULT_NAT_DISCOVERY: Omit<NatDiscoveryOptions, 'server' | 'localAddress'> = {
  timeoutMs: 3000,
  retries: 6,
  rtoMs: 500,
};

export type NatMapping =
  'no-nat' | 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent';
export type NatFiltering = 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent';

export interface NatDiscoveryResult {
  /** False when test I got no valid answer (UDP blocked, or no server). */
  reachable: boolean;
  mapping: NatMapping | 'unknown';
  filtering: NatFiltering | 'unknown';
  natType: NatType;
  /** Our socket's address as we see it. */
  local?: StunAddress;
  /** XOR-MAPPED-ADDRESS of test I. */
  mapped?: StunAddress;
  /** OTHER-ADDRESS of test I. */
  otherAddress?: StunAddress;
  /** Why a behaviour is 'unknown'. */
  notes: string[];
}

/**
 * The tracker's NAT type for a discovery result: 'udp-blocked' when unreachable, 'open' without NAT,
 * cone types for endpoint-independent mapping by filtering, 'symmetric' for any other known mapping,
 * 'unknown' otherwise. Pure.
 */
export function natTypeFromBehaviour(
  reachable: boolean,
  mapping: NatMapping | 'unknown',
  filtering: NatFiltering | 'unknown',
): NatType {
  if (!reachable) return 'udp-blocked';
  switch (mapping) {
    case 'no-nat':
      return 'open';
    case 'address-dependent':
    case 'address-and-port-dependent':
      return 'symmetric';
    case 'unknown':
      return 'unknown';
    case 'endpoint-independent':
      switch (filtering) {
        case 'endpoint-independent':
          return 'full-cone';
        case 'address-dependent':
          return 'restricted-cone';
        case 'address-and-port-dependent':
          return 'port-restricted-cone';
        default:
          return 'unknown';
      }
  }
}

type Outcome =
  | { kind: 'success'; mapped: StunAddress; other?: StunAddress; from: { address: string; port: number } }
  | { kind: 'error'; code: number }
  | { kind: 'timeout' };

interface Target {
  address: string;
  port: number;
}

function sameAddress(a: { address: string; port: number }, b: { address: string; port: number }): boolean {
  return unmapIpv4(a.address) === unmapIpv4(b.address) && a.port === b.port;
}

/** The local IP the OS would use towards `host` (a connected UDP socket sends nothing). */
async function routeSourceIp(host: string, port: number, bound: string): Promise<string | undefined> {
  if (bound !== '0.0.0.0' && bound !== '::') return bound;
  const probe = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.connect(port, host, () => resolve());
    });
    return unmapIpv4(probe.address().address);
  } catch {
    return undefined;
  } finally {
    try {
      probe.close();
    } catch {
      // already closed
    }
  }
}

/**
 * Runs RFC 5780 mapping and filtering tests against `server`. Rejects only on bad options or when the
 * local socket cannot be bound; network trouble and hostile answers become 'unknown' / 'udp-blocked'.
 */
export async function discoverNat(
  options: Partial<NatDiscoveryOptions> & Pick<NatDiscoveryOptions, 'server'>,
): Promise<NatDiscoveryResult> {
  const o = { ...DEFAULT_NAT_DISCOVERY, ...options };
  const family = net.isIP(o.server.host);
  if (!family) throw new TypeError(`server.host must be an IP address (got "${o.server.host}")`);
  if (!Number.isInteger(o.server.port) || o.server.port < 1 || o.server.port > 65535)
    throw new RangeError(`bad server port ${o.server.port}`);
  if (!(o.timeoutMs > 0) || !(o.rtoMs > 0) || !Number.isInteger(o.retries) || o.retries < 0)
    throw new RangeError('timeoutMs and rtoMs must be > 0, retries an integer >= 0');
  const localAddress = o.localAddress ?? (family === 6 ? '::' : '0.0.0.0');
  if (!net.isIP(localAddress))
    throw new TypeError(`localAddress must be an IP address (got "${localAddress}")`);

  const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
  const waiting = new Map<string, (msg: Buffer, rinfo: dgram.RemoteInfo) => void>();
  socket.on('error', (err) => debug('socket error: %s', err.message));
  socket.on('message', (msg, rinfo) => {
    if (msg.length < 20) return;
    try {
      waiting.get(msg.subarray(8, 20).toString('hex'))?.(msg, rinfo);
    } catch (err) {
      debug('ignored answer: %s', (err as Error).message); // defence in depth
    }
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, localAddress, () => {
      socket.off('error', reject);
      resolve();
    });
  });

  /** One Binding transaction; `accept` vets the response source (CHANGE-REQUEST tests). */
  const transact = (
    to: Target,
    change?: { changeIp: boolean; changePort: boolean },
    accept: (from: { address: string; port: number }) => boolean = () => true,
  ): Promise<Outcome> => {
    const transactionId = randomTransactionId();
    const key = Buffer.from(transactionId).toString('hex');
    const attributes: StunAttribute[] = change
      ? [{ kind: 'change-request', type: STUN_ATTR.CHANGE_REQUEST, ...change }]
      : [];
    const bytes = encodeStunMessage(
      { class: 'request', method: STUN_METHOD.binding, transactionId, attributes },
      { fingerprint: true },
    );
    return new Promise<Outcome>((resolve) => {
      let rto = o.rtoMs;
      let sent = 0;
      let timer: NodeJS.Timeout | undefined;
      const deadline = setTimeout(() => finish({ kind: 'timeout' }), o.timeoutMs);
      const finish = (outcome: Outcome) => {
        clearTimeout(timer);
        clearTimeout(deadline);
        waiting.delete(key);
        resolve(outcome);
      };
      const send = () => {
        sent++;
        socket.send(bytes, to.port, to.address, (err) => {
          if (err) debug('send to %s:%d failed: %s', to.address, to.port, err.message);
        });
        if (sent <= o.retries) {
          timer = setTimeout(send, rto);
          rto *= 2;
        }
      };
      waiting.set(key, (msg, rinfo) => {
        const parsed = parseStunMessage(msg);
        if (!parsed.ok) return debug('ignored malformed answer: %s', parsed.reason);
        const m = parsed.message;
        if (m.method !== STUN_METHOD.binding || !Buffer.from(m.transactionId).equals(transactionId)) return;
        const from = { address: unmapIpv4(rinfo.address), port: rinfo.port };
        if (m.class === 'error') {
          const code = findAttribute(m, STUN_ATTR.ERROR_CODE, 'error-code')?.code;
          if (code === undefined) return debug('ignored error answer without ERROR-CODE');
          return finish({ kind: 'error', code });
        }
        if (m.class !== 'success') return;
        const mapped =
          findAttribute(m, STUN_ATTR.XOR_MAPPED_ADDRESS, 'address')?.address ??
          findAttribute(m, STUN_ATTR.MAPPED_ADDRESS, 'address')?.address;
        if (!mapped) return debug('ignored success without a mapped address');
        if (!accept(from))
          return debug('ignored answer from %s:%d (source did not change)', from.address, from.port);
        const other = findAttribute(m, STUN_ATTR.OTHER_ADDRESS, 'address')?.address;
        finish({ kind: 'success', mapped, from, ...(other && { other }) });
      });
      send();
    });
  };

  const notes: string[] = [];
  const result = (
    reachable: boolean,
    mapping: NatMapping | 'unknown',
    filtering: NatFiltering | 'unknown',
    extra: Partial<NatDiscoveryResult> = {},
  ): NatDiscoveryResult => ({
    reachable,
    mapping,
    filtering,
    natType: natTypeFromBehaviour(reachable, mapping, filtering),
    notes,
    ...extra,
  });

  try {
    const primary: Target = { address: o.server.host, port: o.server.port };
    const boundPort = socket.address().port;
    const localIp = await routeSourceIp(primary.address, primary.port, localAddress);
    const local: StunAddress | undefined = localIp
      ? { family: net.isIPv6(localIp) ? 'IPv6' : 'IPv4', address: localIp, port: boundPort }
      : undefined;

    // Mapping test I.
    const t1 = await transact(primary);
    if (t1.kind !== 'success') {
      if (t1.kind === 'error') notes.push(`test I: error ${t1.code}`);
      return result(t1.kind === 'error', 'unknown', 'unknown', { ...(local && { local }) });
    }
    const other = t1.other;
    const base = { ...(local && { local }), mapped: t1.mapped, ...(other && { otherAddress: other }) };
    if (!other || other.address === primary.address || other.port === primary.port) {
      notes.push('server gave no usable OTHER-ADDRESS (no RFC 5780 support)');
      return result(true, 'unknown', 'unknown', base);
    }

    // Mapping tests II and III (RFC 5780 §4.3).
    let mapping: NatMapping | 'unknown';
    if (local && sameAddress(t1.mapped, local)) mapping = 'no-nat';
    else {
      const t2 = await transact({ address: other.address, port: primary.port });
      if (t2.kind !== 'success') {
        notes.push(`mapping test II: ${t2.kind === 'error' ? `error ${t2.code}` : 'no answer'}`);
        mapping = 'unknown';
      } else if (sameAddress(t2.mapped, t1.mapped)) mapping = 'endpoint-independent';
      else {
        const t3 = await transact({ address: other.address, port: other.port });
        if (t3.kind !== 'success') {
          notes.push(`mapping test III: ${t3.kind === 'error' ? `error ${t3.code}` : 'no answer'}`);
          mapping = 'unknown';
        } else
          mapping = sameAddress(t3.mapped, t2.mapped) ? 'address-dependent' : 'address-and-port-dependent';
      }
    }

    // Filtering tests II and III (RFC 5780 §4.4), sent to the primary address.
    let filtering: NatFiltering | 'unknown';
    const f2 = await transact(
      primary,
      { changeIp: true, changePort: true },
      (from) => from.address !== primary.address && from.port !== primary.port,
    );
    if (f2.kind === 'success') filtering = 'endpoint-independent';
    else if (f2.kind === 'error') {
      notes.push(`filtering test II: error ${f2.code}`);
      filtering = 'unknown';
    } else {
      const f3 = await transact(
        primary,
        { changeIp: false, changePort: true },
        (from) => from.address === primary.address && from.port !== primary.port,
      );
      if (f3.kind === 'success') filtering = 'address-dependent';
      else if (f3.kind === 'error') {
        notes.push(`filtering test III: error ${f3.code}`);
        filtering = 'unknown';
      } else filtering = 'address-and-port-dependent';
    }
    return result(true, mapping, filtering, base);
  } finally {
    waiting.clear();
    try {
      socket.close();
    } catch {
      // already closed
    }
  }
}
