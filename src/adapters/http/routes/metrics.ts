// GET /metrics: the Prometheus text format. Public like /healthz unless `server.metricsKeyEnv` names a key: the
// series carry no stock, but they do name every tenant and channel.

import type { FastifyPluginAsync } from 'fastify';
import type { Metrics } from '../../../app/metrics.js';
import { requireOneOf } from '../auth.js';

/** `keys`: when given, a request must present one of them as `Authorization: Bearer`. */
export function metricsRoutes(metrics: Metrics, keys?: readonly string[]): FastifyPluginAsync {
  return async (app) => {
    app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
      if (keys !== undefined) requireOneOf(request, keys, 'GET /metrics needs its key (server.metricsKeyEnv)');
      reply.header('content-type', metrics.registry.contentType);
      return metrics.registry.metrics();
    });
  };
}
