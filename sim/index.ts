/** The simulator room: real engines and the tracker's real session core on a virtual clock. */
export { simulate, DEFAULT_SIM, type SimOptions } from './run.ts';
export {
  scenarioFor,
  scenarioFromJson,
  validateScenario,
  sample,
  SCENARIO_NAMES,
  PROFILE_NAMES,
  PROFILES,
  PRESETS,
  ScenarioError,
  type Scenario,
  type Distribution,
} from './scenario.ts';
export {
  figures,
  markdown,
  plots,
  summaryLine,
  quantile,
  type SimResult,
  type SimFigures,
} from './report.ts';
export { histogramSvg, lineSvg, barSvg, type Series } from './svg.ts';
export { Rng } from './rng.ts';
export { SIM_LADDERS } from './source.ts';
export { UPLOAD_DISTS, isUploadDist, uploadDistribution } from './upload-dist.ts';
export { VirtualTime } from './loop.ts';
