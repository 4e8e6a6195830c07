/** Small statistics and reporting helpers shared by the benchmarks. */
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../../../cli/args.ts';

export { quantile } from '../../../sim/index.ts';

export const mean = (values: readonly number[]): number =>
  values.length ? values.reduce((a, b) => a + b, 0) / values.length : NaN;

/** `results/<name>-<timestamp>/`, created (the folder is git-ignored). */
export function resultsDir(name: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  const dir = path.resolve(import.meta.dirname, '../../../results', `${name}-${stamp}`);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** A progress line that rewrites itself on a terminal and prints plainly elsewhere (CI logs). */
export function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[2K${text}`);
  else process.stderr.write(`${text}\n`);
}
export function progressDone(): void {
  if (process.stderr.isTTY) process.stderr.write('\n');
}

/** A benchmark's bad flag: one line on stderr (`<bench>: …`), exit status 2. */
export function benchUsage(bench: string, message: string): never {
  process.stderr.write(`${bench}: ${message}\n`);
  process.exit(2);
}

/** Runs flag parsing (the CLI's `parseFlags`, `intFlag`, …): a UsageError becomes `benchUsage`. */
export function checkFlags<T>(bench: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof UsageError) benchUsage(bench, err.message);
    throw err;
  }
}
