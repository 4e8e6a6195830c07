export * from './config.ts';
export { buildFfmpegPlan, planToArgs, type FfmpegPlan } from './ffmpeg-args.ts';
export {
  FfmpegRun,
  findFfmpeg,
  probeMediaFile,
  type FfmpegBinaries,
  type ProbedMedia,
} from './ffmpeg-run.ts';
export { ChannelStore, type Broadcast, type Entry } from './store.ts';
export { SourceChannel, DEFAULT_RESTART, type IngestSession, type SourceChannelEvents } from './channel.ts';
export { Origin, parseRange, type ChannelCounters, type OriginOptions } from './origin.ts';
export { masterPlaylist, mediaPlaylist } from './playlists.ts';
export { RtmpIngestServer, streamKeyMatches, DEFAULT_RTMP, type RtmpIngestOptions } from './rtmp/server.ts';
export { TrackerLink, type TrackerLinkOptions } from './tracker-link.ts';
