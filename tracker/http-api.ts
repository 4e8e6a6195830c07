/**
 * The express adapter: CORS, the REST API (directory, channel info and stats, registration), metrics,
 * the dashboard and the web player's pages. Each route validates its input, calls the tracker and
 * answers; a refused or bad request gets `{ ok: false, error: { code, message } }`. Express 5 forwards
 * rejected promises to the error handler at the end.
 */
import path from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import createDebug from 'debug';
import {
  channelIdSchema,
  channelRegistrationSchema,
  describeIssue,
  type ChannelInfo,
  type ChannelRegistration,
  type ChannelStats,
  type TrackerErrorCode,
} from '../protocol/index.ts';
import { Refusal } from './refusal.ts';
import { StaticFiles } from './static-files.ts';

const debug = createDebug('peertv:tracker:http');

export interface HttpApiOptions {
  /** Origins allowed by CORS; `['*']` allows any. */
  corsOrigins: string[];
  /** Directory with the web player's files, served at `/`. */
  playerDir: string | undefined;
}

/** What the REST API calls. */
export interface HttpApiDeps {
  directory(): Promise<ChannelInfo[]>;
  channelInfo(id: string): Promise<ChannelInfo | undefined>;
  channelStats(id: string): Promise<ChannelStats | undefined>;
  /** Registers or updates a channel (signed; may throw a {@link Refusal}). */
  register(reg: ChannelRegistration, ip: string): Promise<void>;
  /** Prometheus exposition: content type and text. */
  metrics(): Promise<{ contentType: string; text: string }>;
  /** Counts and reports a refused request. */
  rejected(event: string, code: TrackerErrorCode, message: string, ip: string): void;
}

/** HTTP status of a refused REST registration. */
const REFUSAL_STATUS: Partial<Record<TrackerErrorCode, number>> = {
  unauthorized: 403,
  'registration-expired': 409,
  'registration-replayed': 409,
  'rate-limited': 429,
  'tracker-full': 503,
};

export function createHttpApi(opts: HttpApiOptions, deps: HttpApiDeps): express.Express {
  const restError = (
    res: Response,
    status: number,
    code: TrackerErrorCode,
    message: string,
    event: string,
    req: Request,
    count = true,
  ): void => {
    if (count) deps.rejected(event, code, message, req.ip ?? '?');
    res.status(status).json({ ok: false, error: { code, message } });
  };

  const app = express();
  app.disable('x-powered-by');
  const anyOrigin = opts.corsOrigins.includes('*');
  app.use((req, res, next) => {
    const origin = req.headers.origin;
    if (anyOrigin) res.setHeader('Access-Control-Allow-Origin', '*');
    else if (origin && opts.corsOrigins.includes(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
    }
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'GET, PUT, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'Content-Type');
      return void res.status(204).end();
    }
    next();
  });
  app.get('/healthz', (_req, res) => void res.json({ ok: true }));
  app.get('/api/channels', async (_req, res) => {
    res.setHeader('Cache-Control', 'no-cache');
    res.json(await deps.directory());
  });
  app.get('/api/channels/:id', async (req, res) => {
    const id = channelIdSchema.safeParse(req.params.id);
    const info = id.success ? await deps.channelInfo(id.data) : undefined;
    if (!info) return restError(res, 404, 'unknown-channel', 'no such channel', 'GET /api/channels/:id', req);
    res.setHeader('Cache-Control', 'no-cache');
    res.json(info);
  });
  app.get('/api/channels/:id/stats', async (req, res) => {
    const id = channelIdSchema.safeParse(req.params.id);
    const stats = id.success ? await deps.channelStats(id.data) : undefined;
    if (!stats) return restError(res, 404, 'unknown-channel', 'no such channel', 'GET stats', req);
    res.json(stats);
  });
  // Registration over REST (same schema and secret rules as the socket event).
  app.put('/api/channels/:id', express.json({ limit: '32kb' }), async (req, res) => {
    const body = channelRegistrationSchema.safeParse(req.body);
    if (!body.success)
      return restError(res, 400, 'invalid-input', describeIssue(body.error), 'PUT /api/channels', req);
    if (body.data.channel !== req.params.id)
      return restError(
        res,
        400,
        'invalid-input',
        'channel in body differs from URL',
        'PUT /api/channels',
        req,
      );
    await deps.register(body.data, req.ip ?? '?');
    res.json({ ok: true });
  });
  app.get('/metrics', async (_req, res) => {
    const { contentType, text } = await deps.metrics();
    res.setHeader('Content-Type', contentType);
    res.end(text);
  });
  // Static files go out compressed, with ETags, revalidated on each use (see static-files.ts).
  const dashboard = new StaticFiles(path.join(import.meta.dirname, 'dashboard'), { index: undefined });
  app.get('/dashboard', (req, res, next) => dashboard.send(req, res, next, 'index.html'));
  app.use('/dashboard', dashboard.handler);
  if (opts.playerDir) {
    // The web player: home (directory), watch and embed pages; the page reads the channel from the URL.
    const player = new StaticFiles(opts.playerDir);
    const page = (file: string) => (req: Request, res: Response, next: NextFunction) => {
      const id = channelIdSchema.safeParse(req.params.channel);
      if (!id.success) return restError(res, 404, 'unknown-channel', 'no such channel', 'page', req, false);
      player.send(req, res, next, file);
    };
    app.get('/watch/:channel', page('watch.html'));
    app.get('/embed/:channel', page('embed.html'));
    app.use('/', player.handler);
  }
  app.use((req: Request, res: Response) =>
    restError(res, 404, 'invalid-input', 'not found', 'http', req, false),
  );
  app.use(
    (err: Error & { type?: string; status?: number }, req: Request, res: Response, _next: NextFunction) => {
      if (err instanceof Refusal)
        return restError(res, REFUSAL_STATUS[err.code] ?? 400, err.code, err.message, 'PUT', req);
      if (err.type === 'entity.parse.failed')
        return restError(res, 400, 'invalid-input', 'body is not valid JSON', 'http', req);
      if (err.type === 'entity.too.large')
        return restError(res, 413, 'invalid-input', 'body too large', 'http', req);
      debug('request failed: %s', err.stack);
      restError(res, 500, 'internal', 'internal error', 'http', req);
    },
  );
  return app;
}
