// The HTTP API: a Fastify server over an Engine, one plugin per route group, every error an RFC 9457 problem.

import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import Fastify from 'fastify';
import type { FastifyInstance, FastifyPluginAsync, FastifyServerOptions } from 'fastify';
import swagger from '@fastify/swagger';
import { Ajv } from 'ajv';
import type { Engine } from '../../app/engine.js';
import { authHook, identityRoutes } from './auth.js';
import type { ApiKeyVerifier } from './auth.js';
import { instanceOf, problem, problemOf, sendProblem } from './problem.js';
import { adjustmentRoutes } from './routes/adjustments.js';
import { availabilityRoutes } from './routes/availability.js';
import { channelRoutes } from './routes/channels.js';
import { eventRoutes } from './routes/events.js';
import { fulfillmentRoutes } from './routes/fulfillments.js';
import { healthRoutes } from './routes/health.js';
import { orderRoutes } from './routes/orders.js';
import { reservationRoutes } from './routes/reservations.js';
import { skuRoutes } from './routes/skus.js';
import { streamRoutes } from './routes/stream.js';
import type { StreamOptions } from './routes/stream.js';
import { httpLimits } from './schemas.js';
import { staticFiles } from './static.js';

export interface ServerOptions {
  engine: Engine;
  /** Verifies API keys; the SQLite `ApiKeyStore` in the embedded engine's file. */
  keys: ApiKeyVerifier;
  /** `STOCKLINE_ADMIN_KEY`: an admin key for every tenant. */
  adminKey?: string;
  /** pino options, or false for no logs (the default). */
  logger?: FastifyServerOptions['logger'];
  /** More route groups (metrics, webhooks); they pass the same auth hook and error handler. */
  plugins?: FastifyPluginAsync[];
  /** What else must be ready before /readyz says so (e.g. change-data-capture sources connected); a reason when not. */
  notReadyReason?: () => string | undefined;
  /** A folder served at `/` (the dashboard). */
  webRoot?: string;
  /** Stream tuning, for tests: heartbeat, buffer and catch-up bounds. */
  stream?: Partial<StreamOptions>;
}

const requestIdShape = new RegExp(`^[\\x21-\\x7e]{1,${httpLimits.requestIdLengthMax}}$`);

/** A caller's X-Request-Id when it is short printable ASCII (it goes into logs), else a new UUID. */
function requestIdOf(request: IncomingMessage): string {
  const given = request.headers['x-request-id'];
  return typeof given === 'string' && requestIdShape.test(given) ? given : randomUUID();
}

/**
 * Bodies are checked strictly: no coercion, unknown fields refused, first error reported (allErrors would let a
 * large bad body cost more). Query strings, path parameters and headers arrive as text, so they may coerce.
 * One pair of compilers per process: Ajv caches by schema, and the route schemas are module constants.
 */
const ajvOptions = { removeAdditional: false, allErrors: false, useDefaults: true, strict: true, strictRequired: false, allowUnionTypes: true } as const;
const bodyAjv = new Ajv({ ...ajvOptions, coerceTypes: false });
const parameterAjv = new Ajv({ ...ajvOptions, coerceTypes: true });

function compileValidator({ schema, httpPart }: { schema: object; httpPart?: string }): ReturnType<Ajv['compile']> {
  return (httpPart === 'body' ? bodyAjv : parameterAjv).compile(schema);
}

/** The query string may carry an access token (the stream): keep it out of the request log. */
function loggerOptions(logger: ServerOptions['logger']): FastifyServerOptions['logger'] {
  if (typeof logger !== 'object' || logger === null) return logger ?? false;
  const req = (request: { method: string; url: string; id: string }): { method: string; url: string; id: string } => (
    { method: request.method, url: request.url.split('?')[0] ?? '', id: request.id });
  return { ...logger, serializers: { req, ...(logger as { serializers?: object }).serializers } };
}

const openapi = {
  openapi: {
    openapi: '3.1.0',
    info: { title: 'Stockline', version: '1', description: 'Real-time inventory: one ledger per tenant, holds without row locks, channels updated in milliseconds.' },
    components: {
      securitySchemes: {
        bearerAuth: { type: 'http', scheme: 'bearer', description: 'Authorization: Bearer <key>' },
        apiKeyHeader: { type: 'apiKey', in: 'header', name: 'X-Api-Key' },
      },
    },
  },
} as const;

/**
 * Many clients send `Content-Type: application/json` with no body on POSTs like commit; that reads as no body
 * (the route's schema then decides) instead of a parse error. Everything else goes to Fastify's own safe parser.
 */
function acceptEmptyJson(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body.toString();
    if (text === '') done(null, undefined);
    else parseJson(request, text, done);
  });
}

export async function buildServer(options: ServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: loggerOptions(options.logger),
    bodyLimit: httpLimits.bodyBytesMax,
    requestIdHeader: false,
    genReqId: requestIdOf,
    routerOptions: { maxParamLength: httpLimits.pathParamLengthMax },
    // Malformed URLs and over-long path parameters are refused before routing; they get problems too.
    frameworkErrors: (error, request, reply) => sendProblem(reply, request, problemOf(error, request, request.log)),
  });
  app.setValidatorCompiler(compileValidator);
  acceptEmptyJson(app);
  app.setErrorHandler((error, request, reply) => sendProblem(reply, request, problemOf(error, request, request.log)));
  app.setNotFoundHandler((request, reply) => sendProblem(reply, request, problem('NOT_FOUND', `no route ${request.method} ${instanceOf(request)}`)));
  app.addHook('onRequest', authHook(options.keys, options.adminKey));
  // The auth hook also sets x-request-id on every reply (set early, it survives to errors and 404s).
  await app.register(swagger, openapi);
  const engine = options.engine;
  await app.register(healthRoutes, { engine, notReadyReason: options.notReadyReason ?? (() => undefined) });
  await app.register(identityRoutes, { engine });
  for (const routes of [skuRoutes, availabilityRoutes, adjustmentRoutes, reservationRoutes, fulfillmentRoutes, orderRoutes, channelRoutes, eventRoutes]) {
    await app.register(routes, { engine });
  }
  await app.register(streamRoutes, { engine, ...(options.stream === undefined ? {} : { stream: options.stream }) });
  for (const plugin of options.plugins ?? []) await app.register(plugin);
  if (options.webRoot !== undefined) await app.register(staticFiles, { root: options.webRoot });
  return app;
}
