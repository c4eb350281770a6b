// Baseline (b): a bare Fastify endpoint that decrements an in-memory counter: the ceiling of the HTTP stack here.

import Fastify from 'fastify';

const port = Number(process.env.PORT ?? 0);
let available = Number(process.env.STOCK ?? 1_000_000_000);
const app = Fastify({ logger: false });

app.post('/reserve', async (_request, reply) => {
  if (available <= 0) return reply.code(409).send({ code: 'INSUFFICIENT_STOCK' });
  available -= 1;
  return reply.code(201).send({ status: 'held', available });
});
app.get('/available', async () => ({ available }));

const address = await app.listen({ port, host: '127.0.0.1' });
process.stdout.write(`${address}\n`);
