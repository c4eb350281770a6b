// Liveness, readiness and the OpenAPI document: public routes for probes and tooling.

import type { FastifyPluginAsync } from 'fastify';
import type { Engine } from '../../../app/engine.js';
import { problem } from '../problem.js';
import { errorResponses, object } from '../schemas.js';

export const healthRoutes: FastifyPluginAsync<{ engine: Engine; notReadyReason: () => string | undefined }> = async (app, { engine, notReadyReason }) => {
  app.get('/healthz', {
    config: { public: true },
    schema: {
      operationId: 'getHealth', summary: 'The process is alive', tags: ['health'], security: [],
      response: { 200: object({ status: { type: 'string' } }, ['status']) },
    },
  }, async () => ({ status: 'ok' }));

  app.get('/readyz', {
    config: { public: true },
    schema: {
      operationId: 'getReadiness', summary: 'The engine has restored its state, takes commands, and every change-data-capture source is connected', tags: ['health'], security: [],
      response: { 200: object({ status: { type: 'string' }, position: { type: 'integer' } }, ['status', 'position']), ...errorResponses },
    },
  }, async () => {
    if (!engine.ready()) throw problem('NOT_READY', engine.notReadyReason?.() ?? 'the engine is not ready: it is restoring its state or shutting down');
    const reason = notReadyReason();
    if (reason !== undefined) throw problem('NOT_READY', reason);
    return { status: 'ready', position: engine.committedPosition() };
  });

  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());
};
