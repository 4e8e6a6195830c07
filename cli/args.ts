/** Flag parsing shared by the subcommands: strict, typed, one-line errors. */
import { isIP } from 'node:net';
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  override name = 'UsageError';
}

/** A runtime failure reported to the user in one line (exit status 1). */
export class CliError extends Error {
  override name = 'CliError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

export function parseFlags<O extends Options>(argv: string[], options: O) {
  try {
    return parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    // Node's messages are multi-line and mention internals; keep the first line.
    throw new UsageError((err as Error).message.split('\n')[0]!.replace(/^TypeError \[[A-Z_]+\]: /, ''));
  }
}

export function intFlag(
  name: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a whole number (got "${value}")`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`--${name} must be from ${min} to ${max} (got ${n})`);
  return n;
}

export function hostFlag(name: string, value: string | undefined, fallback: string): string {
  if (value === undefined) return fallback;
  if (!/^[A-Za-z0-9.:[\]-]{1,253}$/.test(value))
    throw new UsageError(`--${name} is not a host name or address`);
  return value;
}

export function urlFlag(name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new UsageError(`--${name} must be an absolute URL (got "${value}")`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--${name} must be http(s)`);
  if (u.search || u.hash) throw new UsageError(`--${name} must not have a query or fragment`);
  return u.toString().replace(/\/+$/, '');
}

/** `HOST[:PORT]` where HOST is an IPv4 address or a bracketed IPv6 address (`[::1]:3478`). */
export function ipPortFlag(
  name: string,
  value: string | undefined,
  defaultPort: number,
  /** Allow port 0 (any free port), for listen addresses. */
  allowZero = false,
): { host: string; port: number } | undefined {
  if (value === undefined) return undefined;
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+))(?::(\d{1,5}))?$/.exec(value);
  const host = m?.[1] ?? m?.[2];
  if (!m || !host || !isIP(host))
    throw new UsageError(`--${name} must be IP[:PORT], e.g. 127.0.0.1:3478 (got "${value}")`);
  const port = m[3] === undefined ? defaultPort : Number(m[3]);
  const min = allowZero ? 0 : 1;
  if (port < min || port > 65535)
    throw new UsageError(`--${name}: port must be from ${min} to 65535 (got ${port})`);
  return { host, port };
}
