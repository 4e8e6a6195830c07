/** A tracker channel record for tests: channel `ch`, live, 1 s segments, the given renditions. */
import type { ChannelRecord } from '../../tracker/index.ts';

export function channelRecord(
  over: Partial<ChannelRecord> = {},
  renditions: string[] = ['180p'],
): ChannelRecord {
  return {
    registration: {
      channel: 'ch',
      title: 'Channel',
      originUrl: 'http://127.0.0.1:9',
      publicKey: 'A'.repeat(43),
      status: 'live',
      segmentDurationS: 1,
      renditions: renditions.map((name, i) => ({
        name,
        width: 320,
        height: 180,
        bandwidthBps: 400_000 * (i + 1),
      })),
      livePlaylist: null,
      recordings: [],
    },
    origin: null,
    originBase: null,
    registeredAt: 0,
    updatedAt: 0,
    ...over,
  };
}
