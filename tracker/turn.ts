/**
 * TURN REST credentials (coturn with `use-auth-secret`): each peer gets time-limited credentials, so no
 * long-term password reaches a browser. Username `<expiry>:<peerId>`, password
 * base64(HMAC-SHA1(secret, username)).
 */
import crypto from 'node:crypto';
import type { IceServer } from '../protocol/index.ts';

export interface TurnOptions {
  urls: string[];
  /** The shared secret of coturn's `static-auth-secret` (at least 16 characters). */
  secret: string;
  /** How long the credentials are valid, 60 s to a day. */
  ttlS: number;
}

/** Throws when the options cannot work (misuse, caught at construction). */
export function checkTurnOptions(turn: TurnOptions | undefined): void {
  if (turn && (turn.secret.length < 16 || !(turn.ttlS >= 60 && turn.ttlS <= 86_400)))
    throw new RangeError('turn needs a secret of at least 16 characters and a ttlS from 60 to 86400');
}

/** ICE servers for one peer: the configured ones plus TURN with fresh time-limited credentials. */
export function iceServersFor(
  iceServers: IceServer[],
  turn: TurnOptions | undefined,
  peerId: string,
  nowMs: number,
): IceServer[] {
  if (!turn || turn.urls.length === 0) return iceServers;
  const username = `${Math.floor(nowMs / 1000) + turn.ttlS}:${peerId}`;
  const credential = crypto.createHmac('sha1', turn.secret).update(username).digest('base64');
  return [...iceServers, { urls: turn.urls, username, credential }];
}
