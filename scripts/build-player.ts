/**
 * Builds the web player and the tracker's dashboard (player/build) and prints the size report.
 * Usage: tsx scripts/build-player.ts [--force]   (`npm run build:player`)
 */
import { buildPlayer, formatSizeReport } from '../player/build/index.ts';

const t0 = performance.now();
const report = await buildPlayer(process.argv.includes('--force'));
console.error(`player built in ${(performance.now() - t0).toFixed(0)} ms → player/dist`);
console.log(formatSizeReport(report));
