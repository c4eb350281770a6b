// The HTTP API: a Fastify server over an Engine, one plugin per route group, every error an RFC 9457 problem.

import { randomUUID } from 'node:crypto';
import { maxHeaderSize } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, { LogController } from 'fastify';
import type { ConnectionError, FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import pino from 'pino';
import type { Bindings, ChildLoggerOptions, Logger, LoggerOptions } from 'pino';
import swagger from '@fastify/swagger';
import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import { Ajv } from 'ajv';
import type { Engine } from '../../app/engine.js';
import { authHook, identityRoutes } from './auth.js';
import type { ApiKeyVerifier } from './auth.js';
import { clientErrorProblem, instanceOf, problem, problemOf, problemResponse, reservedKeyProblem, sendProblem } from './problem.js';
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
import { documentRequestIds, httpLimits, markOptionalBodies } from './schemas.js';
import { staticFiles } from './static.js';

export interface ServerOptions {
  engine: Engine;
  /** Verifies API keys; the SQLite `ApiKeyStore` in the embedded engine's file. */
  keys: ApiKeyVerifier;
  /** `STOCKLINE_ADMIN_KEY`: an admin key for every tenant. */
  adminKey?: string;
  /** A pino logger, or pino options; no logs when absent. Each request is logged once, at debug. */
  logger?: Logger | LoggerOptions | false;
  /** More route groups (metrics, webhooks); they pass the same auth hook and error handler. */
  plugins?: FastifyPluginAsync[];
  /** What else must be ready before /readyz says so (e.g. change-data-capture sources connected); a reason when not. */
  notReadyReason?: () => string | undefined;
  /** Why new holds and imports are refused now (HeapWatch: the heap is nearly full), or undefined when they are taken. */
  heapFullReason?: () => string | undefined;
  /** Why recorded sales and adjustments are refused too (the heap is almost out), or undefined when they are taken. */
  heapExhaustedReason?: () => string | undefined;
  /** A folder served at `/` (the dashboard). */
  webRoot?: string;
  /** Stream tuning, for tests: heartbeat, buffer and catch-up bounds. */
  stream?: Partial<StreamOptions>;
  /** The largest request body taken (`server.bodyLimitBytes`); routes with bounds of their own (imports, webhooks) keep them. */
  bodyBytesMax?: number;
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
const requestSerializer = (request: { method: string; url: string; id: string }): { method: string; url: string; id: string } => (
  { method: request.method, url: request.url.split('?')[0] ?? '', id: request.id });

function baseLogger(logger: ServerOptions['logger']): Logger {
  if (logger === undefined || logger === false) return pino({ level: 'silent' });
  if ('child' in logger && typeof logger.child === 'function') return logger as Logger;
  return pino(logger as LoggerOptions);
}

/**
 * A request's logger, made only when something is logged at an enabled level. Fastify gives every request a
 * child logger; building a pino child for each was a visible share of a read's cost, and most log nothing.
 */
class LazyRequestLogger implements FastifyBaseLogger {
  private made: Logger | undefined;

  constructor(private readonly parent: Logger, private readonly bindings: Bindings, private readonly options: ChildLoggerOptions) {}

  get level(): string {
    return this.options.level ?? this.parent.level;
  }

  set level(level: string) {
    this.logger().level = level;
  }

  private logger(): Logger {
    this.made ??= this.parent.child(this.bindings, this.options);
    return this.made;
  }

  private enabled(level: string): boolean {
    // A route with a level of its own decides on its own child.
    if (this.made === undefined && this.options.level === undefined) return this.parent.isLevelEnabled(level);
    return this.logger().isLevelEnabled(level);
  }

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.logger().child(bindings, options);
  }

  silent(): void {}

  fatal(...args: unknown[]): void { if (this.enabled('fatal')) this.logger().fatal(...(args as [string])); }
  error(...args: unknown[]): void { if (this.enabled('error')) this.logger().error(...(args as [string])); }
  warn(...args: unknown[]): void { if (this.enabled('warn')) this.logger().warn(...(args as [string])); }
  info(...args: unknown[]): void { if (this.enabled('info')) this.logger().info(...(args as [string])); }
  debug(...args: unknown[]): void { if (this.enabled('debug')) this.logger().debug(...(args as [string])); }
  trace(...args: unknown[]): void { if (this.enabled('trace')) this.logger().trace(...(args as [string])); }
}

/**
 * One line per request, when it completes, at debug: at the default level a busy server writes no line per
 * request (metrics count them), and an operator who wants them sets the level to debug.
 */
class RequestLog extends LogController {
  override incomingRequest(): void {}

  constructor(private readonly logger: Logger) {
    super();
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored');
    else if (this.logger.isLevelEnabled('debug')) reply.log.debug({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }
}

const openapi = {
  openapi: {
    openapi: '3.1.0',
    info: { title: 'Stockline', version: '1', description: 'Real-time inventory: one ledger per tenant, holds without row locks, channels updated in milliseconds.' },
    components: {
      securitySchemes: {
        bearerAuth: { type: 'http', scheme: 'bearer', description: 'Authorization: Bearer <key>' },
        apiKeyHeader: { type: 'apiKey', in: 'header', name: 'X-Api-Key' },
        accessTokenQuery: { type: 'apiKey', in: 'query', name: 'access_token', description: 'The stream only: EventSource cannot send headers' },
      },
    },
  },
  // Routes that read no body as `{}` say so: a generated client need not send one. Every answer names its request id.
  transformObject: (document) => documentRequestIds(markOptionalBodies('openapiObject' in document ? document.openapiObject : document.swaggerObject)),
} satisfies FastifyDynamicSwaggerOptions;

/**
 * Many clients send `Content-Type: application/json` with no body on POSTs like commit; that reads as no body
 * (the route's schema then decides) instead of a parse error. Everything else goes to Fastify's own safe parser.
 */
function acceptEmptyJson(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  // Only JSON is read: a text/plain body is 415, as any other type, not a string that fails the schema.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body.toString();
    if (text === '') done(null, undefined);
    // A refused body is looked at again only to name a key that could set a prototype; a good one is parsed once.
    else parseJson(request, text, (error, value) => done(error === null ? null : reservedKeyProblem(text) ?? error, value));
  });
}

/** The in-flight response on a connection, if any (Node keeps it there while it is written). */
type ServerSocket = Socket & { _httpMessage?: ServerResponse | null };

/**
 * Requests Node refuses before Fastify sees them (headers over its limit, a request that is not HTTP/1.1, one not
 * received in time) get a problem too, written on the connection, which is then closed: nothing after a request
 * that could not be read can be trusted to start a new one. A response already started on it is not corrupted:
 * the connection is closed without a word.
 */
function clientErrorHandler(logger: Logger): (error: ConnectionError, socket: Socket) => void {
  return (error, socket) => {
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    const refusal = clientErrorProblem(error, maxHeaderSize);
    const requestId = randomUUID();
    logger.debug({ reqId: requestId, code: error.code, status: refusal.spec.status }, 'request refused before it was read');
    if (socket.writable && (socket as ServerSocket)._httpMessage?.headersSent !== true) socket.write(problemResponse(refusal, requestId, new Date()));
    socket.destroy();
  };
}

/** How often, while the server closes, connections that have gone idle since are closed. */
const closingSweepMs = 50;

/**
 * Closing stops new connections and closes the idle ones, but a keep-alive connection whose request is in flight
 * would stay open after its answer until the keep-alive timeout (72 s), holding the process, and with it the data
 * folder, long after the last answer. Answers not yet started say `Connection: close` and end their connection;
 * connections that go idle later are closed as they do.
 */
function closeConnectionsAsTheyFinish(app: FastifyInstance): void {
  const sockets = new Set<ServerSocket>();
  app.server.on('connection', (socket: ServerSocket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  let sweep: NodeJS.Timeout | undefined;
  app.addHook('preClose', async () => {
    for (const socket of sockets) {
      const response = socket._httpMessage;
      if (response !== null && response !== undefined && !response.headersSent) response.shouldKeepAlive = false;
    }
    sweep = setInterval(() => app.server.closeIdleConnections(), closingSweepMs);
    sweep.unref();
  });
  app.addHook('onClose', async () => clearInterval(sweep));
}

export async function buildServer(options: ServerOptions): Promise<FastifyInstance> {
  const logger = baseLogger(options.logger);
  // At debug, Fastify logs each request (RequestLog) and times it. Above debug it runs without a logger of
  // its own, which spares every request its response listeners and timers; each request still gets a
  // logger of its own, made only if something is logged through it.
  const linePerRequest = logger.isLevelEnabled('debug');
  let requestParent: Logger | undefined;
  const app = Fastify({
    ...(linePerRequest ? { loggerInstance: logger as FastifyBaseLogger } : { logger: false }),
    childLoggerFactory: (parent, bindings, childOptions) => {
      requestParent ??= (linePerRequest ? parent as Logger : logger).child({}, { serializers: { req: requestSerializer } });
      return new LazyRequestLogger(requestParent, bindings, childOptions);
    },
    logController: new RequestLog(logger),
    bodyLimit: options.bodyBytesMax ?? httpLimits.bodyBytesMax,
    requestIdHeader: false,
    genReqId: requestIdOf,
    routerOptions: { maxParamLength: httpLimits.pathParamLengthMax },
    // Malformed URLs and over-long path parameters are refused before routing; they get problems too.
    frameworkErrors: (error, request, reply) => sendProblem(reply, request, problemOf(error, request, request.log)),
    clientErrorHandler: clientErrorHandler(logger),
  });
  app.setValidatorCompiler(compileValidator);
  closeConnectionsAsTheyFinish(app);
  acceptEmptyJson(app);
  app.setErrorHandler((error, request, reply) => sendProblem(reply, request, problemOf(error, request, request.log)));
  app.setNotFoundHandler((request, reply) => sendProblem(reply, request, problem('NOT_FOUND', `no route ${request.method} ${instanceOf(request)}`)));
  app.addHook('onRequest', authHook(options.keys, options.adminKey));
  // The auth hook also sets x-request-id on every reply (set early, it survives to errors and 404s).
  await app.register(swagger, openapi);
  const engine = options.engine;
  await app.register(healthRoutes, { engine, notReadyReason: options.notReadyReason ?? (() => undefined) });
  await app.register(identityRoutes, { engine });
  // New holds and imports, the requests that grow the state, are refused while the heap is nearly full.
  const heapFullReason = options.heapFullReason ?? ((): undefined => undefined);
  // Past that, sales and adjustments too: the process stays up, and their senders try again.
  const heapExhaustedReason = options.heapExhaustedReason ?? ((): undefined => undefined);
  for (const routes of [skuRoutes, availabilityRoutes]) await app.register(routes, { engine });
  await app.register(adjustmentRoutes, { engine, heapFullReason: heapExhaustedReason });
  await app.register(reservationRoutes, { engine, heapFullReason });
  await app.register(orderRoutes, { engine, heapFullReason: heapExhaustedReason });
  for (const routes of [fulfillmentRoutes, channelRoutes]) await app.register(routes, { engine });
  await app.register(eventRoutes, { engine, heapFullReason });
  await app.register(streamRoutes, { engine, ...(options.stream === undefined ? {} : { stream: options.stream }) });
  for (const plugin of options.plugins ?? []) await app.register(plugin);
  if (options.webRoot !== undefined) await app.register(staticFiles, { root: options.webRoot });
  return app;
}
