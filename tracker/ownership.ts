/**
 * Channel ownership: a channel id belongs to the Ed25519 key that first registered it, durably (the
 * pin survives tracker restarts). Every registration or update must be signed by that key, be close to
 * the tracker's clock and be newer than the last one accepted (single-use: a replay is refused).
 * Claims of new channel ids are rate-limited per address and bounded overall.
 */
import crypto from 'node:crypto';
import { registrationPayload, type ChannelRegistration, type ChannelStatus } from '../protocol/index.ts';
import { KeyedBuckets } from './rate-limit.ts';
import { Refusal } from './refusal.ts';
import type { ChannelPin, TrackerStore } from './store.ts';

export interface OwnershipOptions {
  /** A registration signed further than this from the tracker's clock is refused. */
  maxClockSkewMs: number;
  /** New channel ids one address may claim: per hour, and at once. */
  claimsPerHour: number;
  claimBurst: number;
  /** Channels (pinned ids) the tracker holds at most. */
  maxChannels: number;
}

export const DEFAULT_OWNERSHIP: OwnershipOptions = {
  maxClockSkewMs: 10 * 60_000,
  claimsPerHour: 30,
  claimBurst: 10,
  maxChannels: 10_000,
};

/** Verifies an Ed25519 signature made by a raw 32-byte public key (base64url). */
export function verifyRegistrationSignature(reg: ChannelRegistration): boolean {
  try {
    const key = crypto.createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: reg.publicKey },
      format: 'jwk',
    });
    return crypto.verify(null, registrationPayload(reg), key, Buffer.from(reg.signature, 'base64url'));
  } catch {
    return false; // not a valid point: not a key anyone owns
  }
}

export class ChannelOwnership {
  readonly opts: OwnershipOptions;
  readonly #claims: KeyedBuckets;
  /** Per channel: the registration being decided (two claims of one id are decided one after the other). */
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: TrackerStore,
    opts: Partial<OwnershipOptions> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.opts = { ...DEFAULT_OWNERSHIP, ...opts };
    const o = this.opts;
    if (!(o.maxClockSkewMs > 0)) throw new RangeError('maxClockSkewMs must be positive');
    if (!(o.claimsPerHour > 0 && o.claimBurst >= 1)) throw new RangeError('claim limits must be positive');
    this.#claims = new KeyedBuckets(o.claimsPerHour / 3600, o.claimBurst);
  }

  /**
   * Checks a registration's proof of ownership and records it (the pin is durable when this resolves).
   * Throws a {@link Refusal}: `unauthorized` (bad signature, or the id is pinned to another key),
   * `registration-expired`, `registration-replayed`, `rate-limited` (too many new ids from `ip`),
   * `tracker-full`.
   */
  accept(reg: ChannelRegistration, ip: string): Promise<{ pin: ChannelPin; claimed: boolean }> {
    return this.#serialized(reg.channel, () => this.#accept(reg, ip));
  }

  async #accept(reg: ChannelRegistration, ip: string): Promise<{ pin: ChannelPin; claimed: boolean }> {
    const now = this.now();
    const pinned = await this.store.getPin(reg.channel);
    // The cheap checks first; the signature only for a registration that could be accepted.
    if (pinned && pinned.publicKey !== reg.publicKey)
      throw new Refusal('unauthorized', `channel ${reg.channel} belongs to another key`);
    if (Math.abs(reg.signedAtMs - now) > this.opts.maxClockSkewMs)
      throw new Refusal(
        'registration-expired',
        `registration signed ${Math.round((now - reg.signedAtMs) / 1000)} s from the tracker's clock ` +
          `(at most ${this.opts.maxClockSkewMs / 1000} s): check the source's clock`,
      );
    if (pinned && reg.signedAtMs <= pinned.lastSignedAtMs)
      throw new Refusal('registration-replayed', 'registration is not newer than the last one accepted');
    if (!pinned) {
      if (!this.#claims.take(ip))
        throw new Refusal('rate-limited', 'too many new channels from this address; try again later');
      if ((await this.store.listPins()).length >= this.opts.maxChannels)
        throw new Refusal('tracker-full', 'the tracker holds as many channels as it may');
    }
    if (!verifyRegistrationSignature(reg))
      throw new Refusal('unauthorized', 'registration is not signed by the key it names');
    const pin: ChannelPin = {
      publicKey: reg.publicKey,
      pinnedAtMs: pinned?.pinnedAtMs ?? now,
      lastSignedAtMs: reg.signedAtMs,
      everLive: (pinned?.everLive ?? false) || isLive(reg.status),
    };
    await this.store.putPin(reg.channel, pin);
    return { pin, claimed: !pinned };
  }

  /** Forgets a channel's pin (the operator moves it to a new key; see the README). */
  async release(channel: string): Promise<boolean> {
    return this.#serialized(channel, async () => {
      const had = (await this.store.getPin(channel)) !== undefined;
      await this.store.deletePin(channel);
      return had;
    });
  }

  /** Drops idle claim buckets (call now and then). */
  sweep(): void {
    this.#claims.sweep();
  }

  async #serialized<T>(channel: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#locks.get(channel) ?? Promise.resolve();
    const run = before.then(fn, fn);
    const tail = run.catch(() => {});
    this.#locks.set(channel, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(channel) === tail) this.#locks.delete(channel);
    }
  }
}

const isLive = (status: ChannelStatus): boolean => status === 'live';
