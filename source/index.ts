export * from './config.ts';
export { buildFfmpegPlan, planToArgs, type FfmpegPlan } from './ffmpeg-args.ts';
export {
  FfmpegRun,
  findFfmpeg,
  probeMediaFile,
  type FfmpegBinaries,
  type ProbedMedia,
} from './ffmpeg-run.ts';
export { ChannelSigner } from './keys.ts';
export { ChannelStore, type Broadcast, type Entry } from './store.ts';
export {
  SourceChannel,
  DEFAULT_RESTART,
  DEFAULT_TAKEOVER,
  type IngestSession,
  type SourceChannelEvents,
  type TakeoverPolicy,
} from './channel.ts';
export { Origin, DEFAULT_ORIGIN, type OriginOptions } from './origin.ts';
export {
  ConnectionGuard,
  DEFAULT_CONNECTION_GUARD,
  descriptorLimit,
  raiseDescriptorLimit,
  type ConnectionGuardOptions,
  type ConnectionStats,
  type OriginLimits,
} from './connection-guard.ts';
export { parseRange, type ByteKind, type ChannelCounters } from './origin-responses.ts';
export { addressBucket } from './address-bucket.ts';
export { masterPlaylist, mediaPlaylist } from './playlists.ts';
export { RtmpIngestServer, streamKeyMatches } from './rtmp/server.ts';
export {
  DEFAULT_RTMP,
  type RtmpIngestOptions,
  type RtmpIngestConfig,
  type RtmpLimits,
  type RtmpRefusalCode,
  type RtmpIngestStats,
  type RtmpTarget,
} from './rtmp/options.ts';
export { TrackerLink, type TrackerLinkOptions } from './tracker-link.ts';
