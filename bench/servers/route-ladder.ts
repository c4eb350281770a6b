// The steps from the bare counter (b) to the Fastify floor (c), one at a time, for bench/route-shape.ts:
// STEP=0 is the bare counter; each step adds one part of the shape of Stockline's POST …/reservations
// route and keeps the ones before. 1: the tenant in the path; 2: the body's schema; 3: the path's schema;
// 4: the headers' schema; 5: the response's schema and a reservation's body; 6: a request id and the
// onRequest hook that compares the key in constant time and sets X-Request-Id; 7: a new reservation id
// and a Location header, which is the floor.

import { randomUUID } from 'node:crypto';
import Fastify from 'fastify';
import type { FastifySchema } from 'fastify';
import { reserveBody } from '../../src/adapters/http/routes/reservations.js';
import { fields, idempotencyHeaders, params, reservationView } from '../../src/adapters/http/schemas.js';
import { keyHook } from './key-hook.js';

const step = Number(process.env.STEP ?? 0);
const app = Fastify({ logger: false, ...(step >= 6 ? { requestIdHeader: false, genReqId: () => randomUUID() } : {}) });
if (step >= 6) app.addHook('onRequest', keyHook(process.env.STOCKLINE_ADMIN_KEY ?? 'bench-admin-key-0123456789abcdef'));
const schema: FastifySchema = {};
if (step >= 2) schema.body = reserveBody;
if (step >= 3) schema.params = params({ tenant: fields.tenant });
if (step >= 4) schema.headers = idempotencyHeaders;
if (step >= 5) schema.response = { 201: reservationView };
const line = { sku: 'HOT-1', location: 'default', quantity: 1 };
const constantId = '0b7f6f1e-3c2a-4d5e-9f80-1a2b3c4d5e6f';
let available = 1_000_000_000;
app.post<{ Params: { tenant: string } }>(step >= 1 ? '/v1/tenants/:tenant/reservations' : '/reserve', { schema }, async (request, reply) => {
  available -= 1;
  if (step < 5) return reply.code(201).send({ status: 'held', available });
  const id = step >= 7 ? randomUUID() : constantId;
  if (step >= 7) void reply.header('location', `/v1/tenants/${request.params.tenant}/reservations/${id}`);
  return reply.code(201).send({ id, status: 'held', channel: 'storefront', expiresAt: '2026-12-06T23:59:59.000Z', createdAt: '2026-12-06T23:44:59.000Z', orderRef: null, lines: [line] });
});

const address = await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' });
process.stdout.write(`${address}\n`);
