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
export {
  Origin,
  DEFAULT_ORIGIN,
  descriptorLimit,
  raiseDescriptorLimit,
  parseRange,
  type ChannelCounters,
  type ConnectionStats,
  type OriginLimits,
  type OriginOptions,
} from './origin.ts';
export { masterPlaylist, mediaPlaylist } from './playlists.ts';
export {
  RtmpIngestServer,
  streamKeyMatches,
  addressBucket,
  DEFAULT_RTMP,
  type RtmpIngestOptions,
  type RtmpIngestConfig,
  type RtmpLimits,
  type RtmpRefusalCode,
  type RtmpIngestStats,
} from './rtmp/server.ts';
export { TrackerLink, type TrackerLinkOptions } from './tracker-link.ts';
