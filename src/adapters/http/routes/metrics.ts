// GET /metrics: the Prometheus text format, public like /healthz (it carries no SKU or tenant data beyond ids).

import type { FastifyPluginAsync } from 'fastify';
import type { Metrics } from '../../../app/metrics.js';

export function metricsRoutes(metrics: Metrics): FastifyPluginAsync {
  return async (app) => {
    app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
      reply.header('content-type', metrics.registry.contentType);
      return metrics.registry.metrics();
    });
  };
}
