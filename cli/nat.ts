/** `peertv nat`: which NAT is this machine behind? RFC 5780 behaviour discovery against a STUN server. */
import { discoverNat, DEFAULT_NAT_DISCOVERY, type NatDiscoveryResult } from '../stun/index.ts';
import { intFlag, ipPortFlag, parseFlags, UsageError } from './args.ts';

export const NAT_HELP = `Usage: peertv nat --server IP[:PORT] [options]

Runs RFC 5780 NAT behaviour discovery (mapping and filtering tests) against a STUN server that has an
alternate address (e.g. "peertv stun --alternate IP"), and prints the NAT type a peer reports to the
tracker: open, full-cone, restricted-cone, port-restricted-cone, symmetric, udp-blocked or unknown.

Options:
  --server IP[:PORT]     the STUN server (port 3478 by default)
  --timeout-ms N         per test, before giving up (default: ${DEFAULT_NAT_DISCOVERY.timeoutMs})
  --json                 print the whole result as JSON
  -h, --help             show this help
`;

const FLAGS = {
  server: { type: 'string' },
  'timeout-ms': { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** One line for people: the type, then the behaviours and addresses it rests on. */
export function natLine(r: NatDiscoveryResult): string {
  const addr = (a: { address: string; port: number } | undefined) =>
    a ? (a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`) : '-';
  return (
    `nat: ${r.natType} (mapping ${r.mapping}, filtering ${r.filtering}, local ${addr(r.local)}, ` +
    `mapped ${addr(r.mapped)})${r.notes.length ? `; ${r.notes.join('; ')}` : ''}`
  );
}

export async function runNatCli(argv: string[]): Promise<void> {
  const { values: v } = parseFlags(argv, FLAGS);
  if (v.help) {
    process.stdout.write(NAT_HELP);
    return;
  }
  const server = ipPortFlag('server', v.server, 3478);
  if (!server) throw new UsageError('--server is required');
  const timeoutMs = intFlag('timeout-ms', v['timeout-ms'], DEFAULT_NAT_DISCOVERY.timeoutMs, 100, 60_000);
  const r = await discoverNat({ server, timeoutMs });
  console.log(v.json ? JSON.stringify(r) : natLine(r));
}
