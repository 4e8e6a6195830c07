/** Runs a child process for tests (CLI and benchmark smoke tests) and collects its output. */
import { spawn } from 'node:child_process';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node [--import tsx] …args` from the repository root. `untilStdout`: send SIGINT once stdout
 * matches (a server that should then stop cleanly). Killed with SIGKILL after `timeoutMs`.
 */
export function runNode(
  args: string[],
  opts: { tsx?: boolean; timeoutMs?: number; untilStdout?: RegExp } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const argv = opts.tsx ? ['--import', 'tsx', ...args] : args;
    const child = spawn(process.execPath, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let until = opts.untilStdout;
    child.stdout.on('data', (d) => {
      stdout += d;
      if (until?.test(stdout)) {
        until = undefined;
        child.kill('SIGINT');
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `peertv <args…>` through the package's bin. */
export const peertv = (args: string[], opts: { timeoutMs?: number; untilStdout?: RegExp } = {}) =>
  runNode(['bin/peertv.js', ...args], opts);
