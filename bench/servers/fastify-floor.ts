// Reference (c): the floor of a Fastify API shaped like Stockline's, doing no work. The same path parameters,
// body and response schemas as GET /v1/tenants/{t}/skus/{sku} and POST /v1/tenants/{t}/reservations, an
// onRequest hook that compares the key with the admin key in constant time (as Stockline's does) and sets
// X-Request-Id, and a constant answer (a reservation gets a new id and a Location, as Stockline's does). What it
// costs over the bare counter is what the framework's routing, hooks, validation and schemas cost, before any
// ledger work.

import { randomUUID } from 'node:crypto';
import Fastify from 'fastify';
import { reserveBody } from '../../src/adapters/http/routes/reservations.js';
import { fields, idempotencyHeaders, params, reservationView, skuView } from '../../src/adapters/http/schemas.js';
import { keyHook } from './key-hook.js';

const port = Number(process.env.PORT ?? 0);
const app = Fastify({ logger: false, requestIdHeader: false, genReqId: () => randomUUID() });

app.addHook('onRequest', keyHook(process.env.STOCKLINE_ADMIN_KEY ?? 'bench-admin-key-0123456789abcdef'));

const view = {
  sku: 'HOT-1', onHand: 1_000_000_000, committed: 0, reserved: 0, available: 1_000_000_000, deleted: false, version: 1, channels: {},
  locations: { default: { onHand: 1_000_000_000, committed: 0, reserved: 0, available: 1_000_000_000 } },
};
app.get('/v1/tenants/:tenant/skus/:sku', { schema: { params: params({ tenant: fields.tenant, sku: fields.sku }), response: { 200: skuView } } }, async () => view);

const line = { sku: 'HOT-1', location: 'default', quantity: 1 };
app.post<{ Params: { tenant: string }; Body: { channel: string } }>('/v1/tenants/:tenant/reservations', {
  schema: { params: params({ tenant: fields.tenant }), headers: idempotencyHeaders, body: reserveBody, response: { 201: reservationView } },
}, async (request, reply) => {
  const id = randomUUID();
  const held = { id, status: 'held', channel: request.body.channel, expiresAt: '2026-12-06T23:59:59.000Z', createdAt: '2026-12-06T23:44:59.000Z', orderRef: null, lines: [line] };
  return reply.code(201).header('location', `/v1/tenants/${request.params.tenant}/reservations/${id}`).send(held);
});

const address = await app.listen({ port, host: '127.0.0.1' });
process.stdout.write(`${address}\n`);
