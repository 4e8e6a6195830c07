export { Tracker, DEFAULT_TRACKER, pinFilePath, type TrackerOptions, type TrackerEvents } from './server.ts';
export {
  Sessions,
  DEFAULT_SESSIONS,
  type SessionOptions,
  type SessionDeps,
  type SessionEvents,
  type SessionMetrics,
  type PeerHandle,
  type PeerSession,
  type PeerPlace,
  type PeerEvent,
  type JoinOrder,
  type LeaveReason,
} from './sessions.ts';
export {
  realTrackerClock,
  peerIdFrom,
  type TrackerClock,
  type TrackerTimer,
  type RandomSource,
} from './clock.ts';
export { answer, parseInput, parseJoin, peerRequests } from './requests.ts';
export { PushQueue, type NeighbourChanges } from './push-queue.ts';
export { Overlay, type OverlayOptions, type NotifyNeighbours } from './overlay.ts';
export { iceServersFor, type TurnOptions } from './turn.ts';
export { TrackerMetrics } from './metrics.ts';
export { Refusal } from './refusal.ts';
export { ChannelOwnership, DEFAULT_OWNERSHIP, type OwnershipOptions } from './ownership.ts';
export { Reputation, DEFAULT_REPUTATION, type ReputationOptions } from './reputation.ts';
export { RandomPolicy, DEFAULT_RANDOM_POLICY, type OverlayPolicy, type PolicyContext } from './policy.ts';
export {
  planRendition,
  slotsOf,
  DEFAULT_CHANDELIER,
  type ChandelierPeer,
  type ChandelierPlan,
  type ChandelierOptions,
} from './chandelier.ts';
export {
  ChandelierPolicy,
  DEFAULT_CHANDELIER_POLICY,
  type ChandelierPolicyOptions,
} from './chandelier-policy.ts';
export { POLICY_NAMES, createPolicy, isPolicyName, type PolicyName } from './policies.ts';
export {
  MemoryTrackerStore,
  type TrackerStore,
  type PeerRecord,
  type ChannelRecord,
  type ChannelPin,
  type MemoryTrackerStoreOptions,
} from './store.ts';
export { StatsKeeper, offloadOver, uploadRateOver, DEFAULT_STATS, type StatsOptions } from './stats.ts';
export { TokenBucket, KeyedBuckets } from './rate-limit.ts';
export { StaticFiles, DEFAULT_STATIC_FILES, type StaticFilesOptions } from './static-files.ts';
