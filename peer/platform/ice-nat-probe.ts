/**
 * A NAT type from ICE alone, for peers that cannot send raw STUN (browsers). RFC 5780's mapping test
 * sends Binding requests from one socket to two addresses of one STUN server and compares the
 * reflexive addresses: the same → endpoint-independent mapping (a cone), different → address-dependent
 * (symmetric). ICE does exactly that when given both addresses as STUN servers: it gathers a
 * server-reflexive candidate against each from the same host socket, and drops the second when it is
 * the same address (so a cone shows one srflx candidate per host socket, a symmetric NAT two).
 *
 * What ICE cannot test is filtering (that needs answers from an address the request did not go to:
 * CHANGE-REQUEST), so a cone is reported as the most restrictive one, `port-restricted-cone`: the overlay
 * then never pairs it directly with a symmetric peer, which is right for that cone and only cautious for
 * the others. No srflx candidate at all, with both servers answering (no candidate error) and gathering
 * complete, means the reflexive address was the host's own: no NAT, `open`. Anything less certain stays
 * `unknown`, which the overlay treats as a port-restricted cone.
 */
import type { NatType } from '../../protocol/index.ts';
import type { NatProber } from '../core/seams.ts';

/** What gathering saw: candidate lines, the probe URLs that answered with an error, whether it completed. */
export interface IceGathering {
  candidates: readonly string[];
  failedUrls: number;
  complete: boolean;
}

interface ParsedCandidate {
  protocol: string;
  address: string;
  port: number;
  type: string;
  base: string | undefined;
}

/** `candidate:<foundation> <component> <protocol> <priority> <address> <port> typ <type> [raddr A rport P] …` */
function parseCandidate(line: string): ParsedCandidate | undefined {
  const f = line.replace(/^a=/, '').trim().split(/\s+/);
  if (f.length < 8 || f[6] !== 'typ') return undefined;
  const port = Number(f[5]);
  if (!Number.isInteger(port)) return undefined;
  const raddr = f.indexOf('raddr');
  const rport = f.indexOf('rport');
  const relatedAddress = raddr > 0 ? f[raddr + 1] : undefined;
  const relatedPort = rport > 0 ? f[rport + 1] : undefined;
  // Browsers hide the base (0.0.0.0 / 0) when they hide host addresses (mDNS).
  const hidden =
    !relatedAddress || relatedAddress === '0.0.0.0' || relatedAddress === '::' || relatedPort === '0';
  return {
    protocol: f[2]!.toLowerCase(),
    address: f[4]!,
    port,
    type: f[7]!,
    base: hidden ? undefined : `${relatedAddress}:${relatedPort}`,
  };
}

/** The NAT type what ICE gathered against the two probe addresses shows (see the file's comment). */
export function natTypeFromGathering(g: IceGathering): NatType {
  const parsed = g.candidates.map(parseCandidate).filter((c) => c !== undefined && c.protocol === 'udp');
  const hosts = new Set(parsed.filter((c) => c!.type === 'host').map((c) => `${c!.address}:${c!.port}`));
  const mappedByBase = new Map<string, Set<string>>();
  for (const c of parsed) {
    if (c!.type !== 'srflx') continue;
    const key = c!.base ?? 'hidden';
    const set = mappedByBase.get(key) ?? new Set<string>();
    set.add(`${c!.address}:${c!.port}`);
    mappedByBase.set(key, set);
  }
  for (const [base, mapped] of mappedByBase) {
    // One socket, two reflexive addresses: the NAT mapped each destination anew. With the bases hidden,
    // every host socket may have its own: only more addresses than sockets shows it.
    const sockets = base === 'hidden' ? Math.max(1, hosts.size) : 1;
    if (mapped.size > sockets) return 'symmetric';
  }
  if (mappedByBase.size > 0) return 'port-restricted-cone';
  if (g.complete && g.failedUrls === 0 && hosts.size > 0) return 'open';
  return 'unknown';
}

/** The part of RTCPeerConnection the probe uses (a browser's, or a test's). */
export type RtcPeerConnectionCtor = new (config: { iceServers: { urls: string }[] }) => {
  onicecandidate: ((e: { candidate: { candidate: string } | null }) => void) | null;
  onicecandidateerror: ((e: { url?: string }) => void) | null;
  createDataChannel(label: string): unknown;
  createOffer(): Promise<{ type: string; sdp?: string }>;
  setLocalDescription(d: { type: string; sdp?: string }): Promise<void>;
  close(): void;
};

export interface IceNatProberOptions {
  /** Default: the global RTCPeerConnection (browsers). */
  RTCPeerConnection?: RtcPeerConnectionCtor;
  /** Gathering longer than this ends the probe with what was seen (default 8000). */
  timeoutMs: number;
}

/** Gathers candidates against both probe URLs, then classifies them ({@link natTypeFromGathering}). */
export class IceNatProber implements NatProber {
  readonly #opts: IceNatProberOptions;

  constructor(opts: Partial<IceNatProberOptions> = {}) {
    this.#opts = { timeoutMs: 8000, ...opts };
  }

  /** Whether this environment can probe (a browser with WebRTC and candidate errors). */
  static available(): boolean {
    const ctor = (globalThis as { RTCPeerConnection?: { prototype: object } }).RTCPeerConnection;
    return ctor !== undefined && 'onicecandidateerror' in ctor.prototype;
  }

  async probe(stunUrls: readonly string[]): Promise<NatType> {
    return natTypeFromGathering(await this.gather(stunUrls));
  }

  /** ICE gathering against the probe URLs (no peer: a data channel only makes ICE gather). */
  async gather(stunUrls: readonly string[]): Promise<IceGathering> {
    const Ctor =
      this.#opts.RTCPeerConnection ??
      (globalThis as unknown as { RTCPeerConnection: RtcPeerConnectionCtor }).RTCPeerConnection;
    const pc = new Ctor({ iceServers: stunUrls.map((urls) => ({ urls })) });
    const candidates: string[] = [];
    const failed = new Set<string>();
    let complete = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(resolve, this.#opts.timeoutMs);
        pc.onicecandidate = (e) => {
          if (e.candidate) {
            if (candidates.length < 64) candidates.push(e.candidate.candidate);
          } else {
            complete = true;
            resolve();
          }
        };
        pc.onicecandidateerror = (e) => {
          // An error without a URL (older engines) cannot be placed: count it against the probe.
          failed.add(e.url && stunUrls.includes(e.url) ? e.url : (e.url ?? 'unknown'));
        };
        pc.createDataChannel('nat-probe');
        pc.createOffer()
          .then((offer) => pc.setLocalDescription(offer))
          .catch(reject);
      });
    } finally {
      clearTimeout(timer);
      pc.close();
    }
    return { candidates, failedUrls: failed.size, complete };
  }
}
