/** Signed channel registrations for tests that play the source's part without a real channel. */
import {
  TRACKER_PROTOCOL_VERSION,
  type ChannelRegistration,
  type UnsignedRegistration,
} from '../../protocol/index.ts';
import { ChannelSigner } from '../../source/index.ts';

const keys = new Map<string, ChannelSigner>();
let lastSignedAtMs = 0;

/** The key a test channel is registered with (one per channel id, the same on every call). */
export function keyOf(channel: string): ChannelSigner {
  let k = keys.get(channel);
  if (!k) keys.set(channel, (k = ChannelSigner.generate()));
  return k;
}

/** A time newer than every registration signed so far in this process (registrations are single-use). */
export function nextSignedAtMs(): number {
  lastSignedAtMs = Math.max(Date.now(), lastSignedAtMs + 1);
  return lastSignedAtMs;
}

/**
 * A registration of `channel` signed with its test key (or `signer`); `over` replaces fields before
 * signing, so the result always verifies (tamper with it afterwards to test refusals).
 */
export function signedRegistration(
  channel: string,
  over: Partial<UnsignedRegistration> = {},
  signer: ChannelSigner = keyOf(channel),
): ChannelRegistration {
  return signer.signRegistration({
    protocolVersion: TRACKER_PROTOCOL_VERSION,
    channel,
    title: `Fake ${channel}`,
    originUrl: 'http://127.0.0.1:9',
    status: 'live',
    segmentDurationS: 2,
    renditions: [
      { name: '180p', width: 320, height: 180, bandwidthBps: 400_000 },
      { name: '90p', width: 160, height: 90, bandwidthBps: 150_000 },
    ],
    livePlaylist: `/channels/${channel}/live/master.m3u8`,
    recordings: [],
    signedAtMs: nextSignedAtMs(),
    ...over,
    publicKey: signer.publicKey,
  });
}
