// Baseline (a): the checkout most shops run today: a PostgreSQL transaction with SELECT ... FOR UPDATE on the SKU row.

import Fastify from 'fastify';
import pg from 'pg';

const port = Number(process.env.PORT ?? 0);
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test', max: Number(process.env.POOL ?? 32) });
const table = process.env.TABLE ?? 'bench_stock';

await pool.query(`DROP TABLE IF EXISTS ${table}; DROP TABLE IF EXISTS ${table}_holds;
  CREATE TABLE ${table} (sku text PRIMARY KEY, available integer NOT NULL);
  CREATE TABLE ${table}_holds (id bigserial PRIMARY KEY, sku text NOT NULL, quantity integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
  INSERT INTO ${table} VALUES ('HOT-1', ${Number(process.env.STOCK ?? 1_000_000_000)});`);

const app = Fastify({ logger: false });
app.post('/reserve', async (_request, reply) => {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query(`SELECT available FROM ${table} WHERE sku = $1 FOR UPDATE`, ['HOT-1']);
    if ((rows[0]?.available ?? 0) < 1) {
      await client.query('ROLLBACK');
      return reply.code(409).send({ code: 'INSUFFICIENT_STOCK' });
    }
    await client.query(`UPDATE ${table} SET available = available - 1 WHERE sku = $1`, ['HOT-1']);
    await client.query(`INSERT INTO ${table}_holds (sku, quantity) VALUES ($1, 1)`, ['HOT-1']);
    await client.query('COMMIT');
    return reply.code(201).send({ status: 'held' });
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
});
app.get('/available', async () => ({ available: (await pool.query(`SELECT available FROM ${table} WHERE sku = 'HOT-1'`)).rows[0]?.available }));
process.on('SIGTERM', () => { void app.close().then(() => pool.end()).then(() => process.exit(0)); });

const address = await app.listen({ port, host: '127.0.0.1' });
process.stdout.write(`${address}\n`);
