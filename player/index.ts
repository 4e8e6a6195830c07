/**
 * The player room's public face for other rooms. The browser bundle's entry is `src/index.ts`
 * (`window.PeerTV`); the tracker's dashboard draws with the same chart component and formatting.
 */
export { attach, PeerTVPlayer, webrtcAvailable } from './src/api.ts';
export { TimeChart, bitrateUnit, type ChartOptions } from './src/app/chart.ts';
export * from './src/app/format.ts';
export type { IoSocket } from './src/app/util.ts';
