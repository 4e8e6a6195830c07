/** `peertv stun`: the STUN server (RFC 8489 Binding on UDP and TCP). */
import { DEFAULT_STUN_SERVER, StunServer } from '../stun/index.ts';
import { ConfigError } from '../source/index.ts';
import { hostFlag, intFlag, ipPortFlag, parseFlags, UsageError } from './args.ts';

export const STUN_HELP = `Usage: peertv stun [options]

Runs a STUN server (RFC 8489): Binding requests over UDP and TCP answered with XOR-MAPPED-ADDRESS,
SOFTWARE and FINGERPRINT; MESSAGE-INTEGRITY checked where present.

Options:
  --host HOST            listen address (default: 127.0.0.1)
  --port N               port for UDP and TCP (default: 3478, 0 = any free port)
  --user NAME:PASSWORD   short-term credentials, repeatable
  --require-integrity    answer 400 to requests without MESSAGE-INTEGRITY
  --alternate IP[:PORT]  a second address of this host (and port, default port + 1) for RFC 5780
                         NAT behaviour discovery: OTHER-ADDRESS, RESPONSE-ORIGIN, CHANGE-REQUEST
  --no-tcp               UDP only
  --rate N               requests per second per source address (default: ${DEFAULT_STUN_SERVER.ratePerS}, 0 = unlimited)
  -h, --help             show this help
`;

const FLAGS = {
  host: { type: 'string' },
  port: { type: 'string' },
  user: { type: 'string', multiple: true },
  'require-integrity': { type: 'boolean' },
  'no-tcp': { type: 'boolean' },
  rate: { type: 'string' },
  alternate: { type: 'string' },
} as const;

export async function runStunCli(argv: string[]): Promise<void> {
  const { values: v } = parseFlags(argv, FLAGS);
  if (v.help) {
    process.stdout.write(STUN_HELP);
    return;
  }
  const credentials = new Map<string, string>();
  for (const u of v.user ?? []) {
    const i = u.indexOf(':');
    if (i <= 0 || i === u.length - 1) throw new UsageError('--user must be NAME:PASSWORD');
    credentials.set(u.slice(0, i), u.slice(i + 1));
  }
  const port = intFlag('port', v.port, 3478, 0, 65535);
  const host = hostFlag('host', v.host, '127.0.0.1');
  const alternate = ipPortFlag('alternate', v.alternate, port === 0 ? 0 : port + 1, true);
  let server: StunServer;
  try {
    server = new StunServer({
      host,
      port,
      ...(alternate && { alternate }),
      tcp: !v['no-tcp'],
      credentials,
      requireIntegrity: v['require-integrity'] ?? false,
      ratePerS: intFlag('rate', v.rate, DEFAULT_STUN_SERVER.ratePerS, 0, 1_000_000),
    });
  } catch (err) {
    // The server checks its options (e.g. an alternate of another family, or on the same port).
    if (err instanceof TypeError || err instanceof RangeError) throw new UsageError(err.message);
    throw err;
  }
  let ports: { udp?: number; tcp?: number; alternate?: number };
  try {
    ports = await server.listen();
  } catch (err) {
    void server.destroy();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new ConfigError(`STUN port ${port} is in use`);
    if (code === 'EACCES') throw new ConfigError(`no permission to listen on STUN port ${port}`);
    throw err;
  }
  const stopped = new Promise<void>((resolve) => {
    let signals = 0;
    const stop = () => {
      if (++signals > 1) process.exit(130);
      void server.destroy().then(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  console.log(
    `stun: udp ${ports.udp ?? '-'} tcp ${ports.tcp ?? '-'} on ${host}` +
      (alternate ? `; alternate ${alternate.host} port ${ports.alternate ?? '-'} (RFC 5780)` : ''),
  );
  await stopped;
}
