/**
 * Tracker state behind an interface: in memory now; a later issue moves it to Redis so several
 * tracker processes can share it (hence every method is async). Channel ownership (which key a channel
 * id is pinned to) is the one durable part: kept in a file when a path is given.
 */
import { z } from 'zod';
import type { RandomSource } from './clock.ts';
import { DurableJsonFile } from './durable-file.ts';
import type {
  ChannelRegistration,
  NatType,
  OriginCounters,
  PeerKind,
  PeerMode,
  PeerReport,
} from '../protocol/index.ts';

export interface ChannelRecord {
  registration: Omit<ChannelRegistration, 'protocolVersion' | 'signature' | 'signedAtMs'>;
  origin: OriginCounters | null;
  /** Origin segment bytes when the tracker first heard of the channel (offload counts from there). */
  originBase: number | null;
  registeredAt: number;
  updatedAt: number;
}

/** A channel id pinned to the key that owns it (durable: survives tracker restarts). */
export interface ChannelPin {
  /** The channel's Ed25519 public key, raw 32 bytes base64url. */
  publicKey: string;
  pinnedAtMs: number;
  /** `signedAtMs` of the newest registration accepted: older or equal ones are replays. */
  lastSignedAtMs: number;
  /** The channel has been live at least once (channels that never go live expire). */
  everLive: boolean;
}

const pinSchema = z.strictObject({
  publicKey: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  pinnedAtMs: z.number().int().nonnegative(),
  lastSignedAtMs: z.number().int().nonnegative(),
  everLive: z.boolean(),
});
const pinFileSchema = z.strictObject({
  version: z.literal(1),
  pins: z.record(z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/), pinSchema),
});

export interface PeerRecord {
  id: string;
  channel: string;
  kind: PeerKind;
  mode: PeerMode;
  rendition: string;
  natType: NatType;
  /** Declared at join, then measured (from reports). */
  uploadKbps: number;
  ip: string;
  joinedAt: number;
  lastSeenAt: number;
  firstTier: boolean;
  /** Several neighbours complained about it: the tracker introduces it to no one. */
  quarantined: boolean;
  report: PeerReport | null;
  /** Bytes received from each neighbour during the last report interval (who feeds whom). */
  flowsIn: Record<string, number>;
}

export interface ByteTotals {
  httpBytes: number;
  p2pBytes: number;
  uploadedBytes: number;
}

export interface TrackerStore {
  getChannel(id: string): Promise<ChannelRecord | undefined>;
  putChannel(id: string, rec: ChannelRecord): Promise<void>;
  listChannels(): Promise<[string, ChannelRecord][]>;
  deleteChannel(id: string): Promise<void>;

  getPin(channel: string): Promise<ChannelPin | undefined>;
  /** Resolves once the pin is durable (a claim must survive a crash right after it is accepted). */
  putPin(channel: string, pin: ChannelPin): Promise<void>;
  deletePin(channel: string): Promise<void>;
  listPins(): Promise<[string, ChannelPin][]>;

  putPeer(peer: PeerRecord): Promise<void>;
  /**
   * Writes `peer` only if a peer with its id is still stored (a handler that read a peer before it
   * left must not bring it back); true when written.
   */
  updatePeer(peer: PeerRecord): Promise<boolean>;
  getPeer(id: string): Promise<PeerRecord | undefined>;
  deletePeer(id: string): Promise<PeerRecord | undefined>;
  channelPeers(channel: string): Promise<PeerRecord[]>;
  countPeers(channel?: string): Promise<number>;
  /** Up to `n` distinct random peers of a channel that pass `accept`. */
  samplePeers(channel: string, n: number, accept: (p: PeerRecord) => boolean): Promise<PeerRecord[]>;

  addLink(a: string, b: string): Promise<void>;
  removeLink(a: string, b: string): Promise<void>;
  hasLink(a: string, b: string): Promise<boolean>;
  linksOf(id: string): Promise<string[]>;
  /** Removes every link of `id`; returns the former partners. */
  dropLinks(id: string): Promise<string[]>;

  /** Byte totals of peers that left (so channel totals never go backwards). */
  addDeparted(channel: string, totals: ByteTotals): Promise<void>;
  departed(channel: string): Promise<ByteTotals>;
}

export interface MemoryTrackerStoreOptions {
  /** Where channel pins are kept (JSON, written atomically); in memory only when not given. */
  pinFile: string | undefined;
}

export class MemoryTrackerStore implements TrackerStore {
  readonly #channels = new Map<string, ChannelRecord>();
  readonly #pins = new Map<string, ChannelPin>();
  readonly #pinFile: DurableJsonFile<z.infer<typeof pinFileSchema>> | undefined;
  readonly #peers = new Map<string, PeerRecord>();
  /** Per channel: peer ids in an array (O(1) random pick) plus their positions. */
  readonly #byChannel = new Map<string, { ids: string[]; pos: Map<string, number> }>();
  readonly #links = new Map<string, Set<string>>();
  readonly #departed = new Map<string, ByteTotals>();

  constructor(
    opts: Partial<MemoryTrackerStoreOptions> = {},
    /** Draws of `samplePeers` (Math.random by default; the simulator's is seeded). */
    private readonly random: RandomSource = Math.random,
  ) {
    if (opts.pinFile) {
      this.#pinFile = new DurableJsonFile(opts.pinFile, () => ({
        version: 1 as const,
        pins: Object.fromEntries(this.#pins),
      }));
      // A pin file that cannot be read must stop the tracker: starting without it would let anyone
      // claim the channels it protects.
      const saved = this.#pinFile.load((json) => {
        const r = pinFileSchema.safeParse(json);
        if (!r.success)
          throw new Error(`${opts.pinFile}: not a channel pin file (${r.error.issues[0]?.message})`);
        return r.data;
      });
      for (const [id, pin] of Object.entries(saved?.pins ?? {})) this.#pins.set(id, pin);
    }
  }

  async getChannel(id: string) {
    return this.#channels.get(id);
  }
  async deleteChannel(id: string) {
    this.#channels.delete(id);
  }
  async getPin(channel: string) {
    const pin = this.#pins.get(channel);
    return pin && { ...pin };
  }
  async putPin(channel: string, pin: ChannelPin) {
    this.#pins.set(channel, { ...pin });
    await this.#pinFile?.save();
  }
  async deletePin(channel: string) {
    if (this.#pins.delete(channel)) await this.#pinFile?.save();
  }
  async listPins() {
    return [...this.#pins].map(([id, pin]): [string, ChannelPin] => [id, { ...pin }]);
  }
  async putChannel(id: string, rec: ChannelRecord) {
    this.#channels.set(id, rec);
  }
  async listChannels() {
    return [...this.#channels];
  }

  async putPeer(peer: PeerRecord) {
    const old = this.#peers.get(peer.id);
    if (old && old.channel !== peer.channel) this.#unindex(old);
    this.#peers.set(peer.id, peer);
    let idx = this.#byChannel.get(peer.channel);
    if (!idx) this.#byChannel.set(peer.channel, (idx = { ids: [], pos: new Map() }));
    if (!idx.pos.has(peer.id)) {
      idx.pos.set(peer.id, idx.ids.length);
      idx.ids.push(peer.id);
    }
  }
  async updatePeer(peer: PeerRecord) {
    if (!this.#peers.has(peer.id)) return false;
    await this.putPeer(peer);
    return true;
  }
  async getPeer(id: string) {
    return this.#peers.get(id);
  }
  async deletePeer(id: string) {
    const peer = this.#peers.get(id);
    if (!peer) return undefined;
    this.#peers.delete(id);
    this.#unindex(peer);
    return peer;
  }
  #unindex(peer: PeerRecord): void {
    const idx = this.#byChannel.get(peer.channel);
    const at = idx?.pos.get(peer.id);
    if (!idx || at === undefined) return;
    const last = idx.ids.pop()!;
    if (last !== peer.id) {
      idx.ids[at] = last;
      idx.pos.set(last, at);
    }
    idx.pos.delete(peer.id);
    if (idx.ids.length === 0) this.#byChannel.delete(peer.channel);
  }
  async channelPeers(channel: string) {
    return (this.#byChannel.get(channel)?.ids ?? []).map((id) => this.#peers.get(id)!);
  }
  async countPeers(channel?: string) {
    return channel === undefined ? this.#peers.size : (this.#byChannel.get(channel)?.ids.length ?? 0);
  }
  async samplePeers(channel: string, n: number, accept: (p: PeerRecord) => boolean) {
    const ids = this.#byChannel.get(channel)?.ids ?? [];
    const out: PeerRecord[] = [];
    if (ids.length === 0 || n <= 0) return out;
    const chosen = new Set<number>();
    // Random probes first (cheap for big swarms), then a full scan from a random offset.
    for (let tries = 0; tries < n * 4 && out.length < n && chosen.size < ids.length; tries++) {
      const i = Math.floor(this.random() * ids.length);
      if (chosen.has(i)) continue;
      chosen.add(i);
      const p = this.#peers.get(ids[i]!)!;
      if (accept(p)) out.push(p);
    }
    const start = Math.floor(this.random() * ids.length);
    for (let k = 0; k < ids.length && out.length < n; k++) {
      const i = (start + k) % ids.length;
      if (chosen.has(i)) continue;
      chosen.add(i);
      const p = this.#peers.get(ids[i]!)!;
      if (accept(p)) out.push(p);
    }
    return out;
  }

  async addLink(a: string, b: string) {
    if (a === b) return;
    for (const [x, y] of [
      [a, b],
      [b, a],
    ] as const) {
      let s = this.#links.get(x);
      if (!s) this.#links.set(x, (s = new Set()));
      s.add(y);
    }
  }
  async removeLink(a: string, b: string) {
    this.#links.get(a)?.delete(b);
    this.#links.get(b)?.delete(a);
  }
  async hasLink(a: string, b: string) {
    return this.#links.get(a)?.has(b) ?? false;
  }
  async linksOf(id: string) {
    return [...(this.#links.get(id) ?? [])];
  }
  async dropLinks(id: string) {
    const partners = [...(this.#links.get(id) ?? [])];
    for (const p of partners) this.#links.get(p)?.delete(id);
    this.#links.delete(id);
    return partners;
  }

  async addDeparted(channel: string, t: ByteTotals) {
    const d = this.#departed.get(channel) ?? { httpBytes: 0, p2pBytes: 0, uploadedBytes: 0 };
    d.httpBytes += t.httpBytes;
    d.p2pBytes += t.p2pBytes;
    d.uploadedBytes += t.uploadedBytes;
    this.#departed.set(channel, d);
  }
  async departed(channel: string) {
    return { ...(this.#departed.get(channel) ?? { httpBytes: 0, p2pBytes: 0, uploadedBytes: 0 }) };
  }
}
