export { Tracker, DEFAULT_TRACKER, type TrackerOptions, type TrackerEvents } from './server.ts';
export { RandomPolicy, DEFAULT_RANDOM_POLICY, type OverlayPolicy, type PolicyContext } from './policy.ts';
export { MemoryTrackerStore, type TrackerStore, type PeerRecord, type ChannelRecord } from './store.ts';
export { StatsKeeper, offloadOver, DEFAULT_STATS, type StatsOptions } from './stats.ts';
export { TokenBucket, KeyedBuckets } from './rate-limit.ts';
