/** A tracker peer record for tests: channel `ch`, rendition 180p, a viewer behind an unknown NAT. */
import type { PeerRecord } from '../../tracker/index.ts';

let nextId = 0;
/** A peer id of the tracker's shape (16 base64url characters), unique per call. */
export const newPeerId = (): string => `p${String(nextId++).padStart(15, '0')}`;

export function peerRecord(over: Partial<PeerRecord> = {}): PeerRecord {
  return {
    id: newPeerId(),
    channel: 'ch',
    kind: 'node',
    mode: 'viewer',
    rendition: '180p',
    natType: 'unknown',
    uploadKbps: 1000,
    ip: '127.0.0.1',
    joinedAt: 0,
    lastSeenAt: 0,
    firstTier: false,
    quarantined: false,
    report: null,
    flowsIn: {},
    ...over,
  };
}
