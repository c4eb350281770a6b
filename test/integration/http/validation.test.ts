// Input validation at the edge: unknown fields, wrong types, out-of-range values and oversized bodies are refused, named, and write nothing.

import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json, startTestApi, tenant } from '../../support/http.js';
import type { TestApi } from '../../support/http.js';

const base = `/v1/tenants/${tenant}`;
const cart = { channel: 'web', lines: [{ sku: 'A', quantity: 1 }] };

let api: TestApi;

// Every request here is refused before the engine, so one server serves them all; afterAll checks nothing was written.
beforeAll(async () => {
  api = await startTestApi();
});

afterAll(async () => {
  expect(api.engine.position()).toBe(0);
  await api.close();
});

interface Case {
  name: string;
  method?: string;
  url?: string;
  body?: unknown;
  headers?: Record<string, string>;
  key?: string;
  error: { in: string; index?: number; pointer: string; message: string | RegExp };
}

const cases: Case[] = [
  { name: 'unknown field', body: { ...cart, colour: 'red' }, error: { in: 'body', pointer: '/colour', message: 'is not allowed (unknown field)' } },
  { name: 'unknown field in a line', body: { channel: 'web', lines: [{ sku: 'A', quantity: 1, size: 'M' }] }, error: { in: 'body', pointer: '/lines/0/size', message: 'is not allowed (unknown field)' } },
  { name: 'missing field', body: { lines: cart.lines }, error: { in: 'body', pointer: '/channel', message: 'is required' } },
  { name: 'string for an integer (no coercion)', body: { channel: 'web', lines: [{ sku: 'A', quantity: '1' }] }, error: { in: 'body', pointer: '/lines/0/quantity', message: 'must be integer' } },
  { name: 'fraction for an integer', body: { ...cart, ttlSeconds: 1.5 }, error: { in: 'body', pointer: '/ttlSeconds', message: 'must be integer' } },
  { name: 'number for a string', body: { ...cart, orderRef: 42 }, error: { in: 'body', pointer: '/orderRef', message: 'must be string' } },
  { name: 'TTL below 1 s', body: { ...cart, ttlSeconds: 0 }, error: { in: 'body', pointer: '/ttlSeconds', message: 'must be >= 1' } },
  { name: 'TTL above 31 days', body: { ...cart, ttlSeconds: 2_678_401 }, error: { in: 'body', pointer: '/ttlSeconds', message: 'must be <= 2678400' } },
  { name: 'zero quantity', body: { channel: 'web', lines: [{ sku: 'A', quantity: 0 }] }, error: { in: 'body', pointer: '/lines/0/quantity', message: 'must be >= 1' } },
  { name: 'quantity above the bound', body: { channel: 'web', lines: [{ sku: 'A', quantity: 1_000_000_001 }] }, error: { in: 'body', pointer: '/lines/0/quantity', message: 'must be <= 1000000000' } },
  { name: 'no lines', body: { channel: 'web', lines: [] }, error: { in: 'body', pointer: '/lines', message: 'must NOT have fewer than 1 items' } },
  {
    name: 'more than 100 lines', body: { channel: 'web', lines: Array.from({ length: 101 }, (_, index) => ({ sku: `S${index}`, quantity: 1 })) },
    error: { in: 'body', pointer: '/lines', message: 'must NOT have more than 100 items' },
  },
  { name: 'malformed channel', body: { ...cart, channel: 'the web' }, error: { in: 'body', pointer: '/channel', message: /must match pattern/ } },
  { name: 'malformed SKU', body: { channel: 'web', lines: [{ sku: '-A', quantity: 1 }] }, error: { in: 'body', pointer: '/lines/0/sku', message: /must match pattern/ } },
  { name: 'array body', body: [cart], error: { in: 'body', pointer: '', message: 'must be object' } },
  { name: 'Idempotency-Key too long', body: cart, headers: { 'idempotency-key': 'k'.repeat(256) }, error: { in: 'header', pointer: '/idempotency-key', message: 'must NOT have more than 255 characters' } },
  { name: 'Idempotency-Key with a space', body: cart, headers: { 'idempotency-key': 'a b' }, error: { in: 'header', pointer: '/idempotency-key', message: /must match pattern/ } },
  { name: 'adjustment with both delta and set', url: `${base}/adjustments`, body: { sku: 'A', delta: 1, set: 2 }, error: { in: 'body', pointer: '/delta', message: 'give exactly one of delta and set' } },
  { name: 'adjustment with a sequence on a delta', url: `${base}/adjustments`, body: { sku: 'A', delta: 1, sourceSeq: '5' }, error: { in: 'body', pointer: '/sourceSeq', message: 'is only allowed with set' } },
  { name: 'negative set', url: `${base}/adjustments`, body: { sku: 'A', set: -1 }, error: { in: 'body', pointer: '/set', message: 'must be >= 0' } },
  { name: 'a reservation id URL parsers drop (..)', body: { ...cart, reservationId: '..' }, error: { in: 'body', pointer: '/reservationId', message: /must match pattern/ } },
  { name: 'a reservation id URL parsers drop (.)', body: { ...cart, reservationId: '.' }, error: { in: 'body', pointer: '/reservationId', message: /must match pattern/ } },
  {
    name: 'adjustment under the name of a change-data-capture source', url: `${base}/adjustments`, body: { sku: 'A', set: 1, source: 'pg:warehouse', sourceSeq: '99999999999999999999' },
    error: { in: 'body', pointer: '/source', message: /names a change-data-capture source \(pg:\.\.\.\)/ },
  },
  {
    name: 'batch item under the name of a Debezium source', url: `${base}/adjustments`, body: { adjustments: [{ sku: 'A', delta: 1 }, { sku: 'A', set: 1, source: 'debezium:shop', sourceSeq: '9' }] },
    error: { in: 'body', index: 1, pointer: '/adjustments/1/source', message: /names a change-data-capture source \(debezium:\.\.\.\)/ },
  },
  { name: 'malformed sequence', url: `${base}/adjustments`, body: { sku: 'A', set: 1, sourceSeq: '0x10' }, error: { in: 'body', pointer: '/sourceSeq', message: /must match pattern/ } },
  { name: 'unknown field in a batch item', url: `${base}/adjustments`, body: { adjustments: [{ sku: 'A', delta: 1 }, { sku: 'A', delta: 1, why: 'x' }] }, error: { in: 'body', index: 1, pointer: '/adjustments/1/why', message: 'is not allowed (unknown field)' } },
  {
    name: 'more than 1000 adjustments', url: `${base}/adjustments`, body: { adjustments: Array.from({ length: 1001 }, () => ({ sku: 'A', delta: 1 })) },
    error: { in: 'body', pointer: '/adjustments', message: 'must NOT have more than 1000 items' },
  },
  { name: 'Idempotency-Key on a batch', url: `${base}/adjustments`, body: { adjustments: [{ sku: 'A', delta: 1 }] }, headers: { 'idempotency-key': 'k1' }, error: { in: 'header', pointer: '/idempotency-key', message: 'applies to single adjustments only, not to batches' } },
  { name: 'empty channel locations', method: 'PUT', url: `${base}/channels/web`, body: { locations: [] }, error: { in: 'body', pointer: '/locations', message: 'must NOT have fewer than 1 items' } },
  { name: 'repeated channel locations', method: 'PUT', url: `${base}/channels/web`, body: { locations: ['a', 'a'] }, error: { in: 'body', pointer: '/locations', message: /must NOT have duplicate items/ } },
  { name: 'negative buffer', method: 'PUT', url: `${base}/channels/web`, body: { bufferUnits: -1 }, error: { in: 'body', pointer: '/bufferUnits', message: 'must be >= 0' } },
  { name: 'unknown release reason', url: `${base}/reservations/r1/release`, body: { reason: 'expired' }, error: { in: 'body', pointer: '/reason', message: 'must be one of "released", "cancelled"' } },
  { name: 'query limit not a number', method: 'GET', url: `${base}/skus?limit=ten`, error: { in: 'query', pointer: '/limit', message: 'must be integer' } },
  { name: 'query limit above 1000', method: 'GET', url: `${base}/events?limit=1001`, error: { in: 'query', pointer: '/limit', message: 'must be <= 1000' } },
  { name: 'unknown query parameter', method: 'GET', url: `${base}/skus?sort=desc`, error: { in: 'query', pointer: '/sort', message: 'is not allowed (unknown field)' } },
  { name: 'malformed tenant in the path', method: 'GET', url: '/v1/tenants/ACME/skus', key: 'admin', error: { in: 'path', pointer: '/tenant', message: /must match pattern/ } },
  { name: 'malformed Last-Event-ID', method: 'GET', url: `${base}/stream`, headers: { 'last-event-id': 'abc' }, error: { in: 'header', pointer: '/last-event-id', message: /must match pattern/ } },
];

describe('validation', () => {
  it.each(cases)('$name is 400 VALIDATION_FAILED naming the field', async ({ method = 'POST', url = `${base}/reservations`, body, headers, key, error }) => {
    const response = await api.inject(method, url, { body, headers, ...(key === 'admin' ? { key: api.keys.admin } : {}) });
    expect(response.statusCode, response.body).toBe(400);
    expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    const problem = json(response);
    expect(problem.code).toBe('VALIDATION_FAILED');
    const errors = problem.errors as Array<{ in: string; pointer: string; message: string }>;
    expect(errors[0]).toMatchObject({ in: error.in, pointer: error.pointer });
    // A batch item's error says which item; others have no index.
    expect((errors[0] as { index?: number }).index).toBe(error.index);
    expect(errors[0]?.message).toMatch(error.message);
    expect(problem.detail).toContain(error.pointer === '' ? '(root)' : error.pointer);
  });

  it('query strings coerce: limit=2 is a number', async () => {
    const response = await api.inject('GET', `${base}/skus?limit=2`);
    expect(response.statusCode).toBe(200);
  });

  it('an oversized body is 413 PAYLOAD_TOO_LARGE with the limit', async () => {
    const response = await api.inject('POST', `${base}/reservations`, { body: { ...cart, orderRef: 'x'.repeat(1_100_000) } });
    expect(response.statusCode).toBe(413);
    expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(json(response)).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', limitBytes: 1_048_576 });
  });

  it('an event import may be larger than 1 MiB', async () => {
    const event = { id: 'x', type: 'sku_deleted', tenant, time: '2025-01-01T00:00:00Z', source: 'import', data: { sku: 'A' }, pad: 'p'.repeat(2_000) };
    const events = Array.from({ length: 800 }, (_, index) => ({ ...event, id: `x${index}` }));
    const response = await api.inject('POST', `${base}/events`, { key: api.keys.admin, body: { events } });
    expect(response.statusCode).toBe(400);
    expect(json(response)).toMatchObject({ code: 'VALIDATION_FAILED', errors: expect.arrayContaining([{ in: 'body', index: 0, pointer: '/events/0/pad', message: 'is not allowed here (unknown property)' }]) });
    expect((json(response).errors as unknown[]).length).toBe(100);
  });

  it('an event import that repeats an id is 400 naming the repeat, and imports nothing', async () => {
    // One receipt twice in a dump joined from overlapping pages would otherwise count its units twice.
    const receipt = { id: 'rcv-7781', type: 'stock_adjustment', tenant, time: '2025-01-01T00:00:00Z', source: 'wms', data: { sku: 'DUP-1', location: 'wh1', mode: 'delta', delta: 12, onHand: 12 } };
    const other = { ...receipt, id: 'rcv-7782' };
    const response = await api.inject('POST', `${base}/events`, { key: api.keys.admin, body: { events: [receipt, other, receipt] } });
    expect(response.statusCode).toBe(400);
    expect(json(response)).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ in: 'body', index: 2, pointer: '/events/2/id', message: 'repeats the id of event 0: each event is one change, imported once' }] });
    expect((await api.inject('GET', `${base}/skus/DUP-1`)).statusCode).toBe(404);
  });

  it('an imported expiry dated later than the server\'s clock is 400: it would release a hold still running', async () => {
    const expiry = {
      id: 'x1', type: 'reservation_released', tenant, time: new Date(Date.now() + 60_000).toISOString(), source: 'wms',
      data: { reservationId: 'cart-1', reason: 'expired', from: 'held', lines: [{ sku: 'A', location: 'default', quantity: 1 }] },
    };
    const response = await api.inject('POST', `${base}/events`, { key: api.keys.admin, body: { events: [expiry] } });
    expect(response.statusCode).toBe(400);
    expect(json(response)).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ in: 'body', index: 0, pointer: '/events/0/time', message: expect.stringMatching(/for an expiry: the hold is still running here$/) }] });
  });

  it('malformed JSON is 400 MALFORMED_REQUEST', async () => {
    const response = await api.inject('POST', `${base}/reservations`, { body: '{"channel":', headers: { 'content-type': 'application/json' } });
    expect(response.statusCode).toBe(400);
    expect(json(response).code).toBe('MALFORMED_REQUEST');
  });

  it('a body that is not JSON is 415 UNSUPPORTED_MEDIA_TYPE, text/plain included', async () => {
    const response = await api.inject('POST', `${base}/reservations`, { body: 'channel=web', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(response.statusCode).toBe(415);
    expect(json(response).code).toBe('UNSUPPORTED_MEDIA_TYPE');
    const text = await api.inject('POST', `${base}/adjustments`, { body: '{"sku":"A","delta":1}', headers: { 'content-type': 'text/plain' } });
    expect(text.statusCode).toBe(415);
    expect(json(text).code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('a body sent without a Content-Type is 415, saying that none was sent and which one is accepted', async () => {
    const response = await api.inject('POST', `${base}/adjustments`, { body: '{"sku":"A","delta":1}' });
    expect(response.raw.req.headers['content-type']).toBeUndefined();
    expect(response.statusCode).toBe(415);
    expect(json(response)).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE', detail: 'no Content-Type was sent with the body; send Content-Type: application/json' });
  });
});

describe('keys that could set a prototype', () => {
  const send = (body: string, url = `${base}/reservations`): ReturnType<TestApi['inject']> =>
    api.inject('POST', url, { body, headers: { 'content-type': 'application/json' } });

  it.each([
    { name: '__proto__ in a line', body: '{"channel":"web","lines":[{"sku":"A","quantity":1,"__proto__":{"x":1}}]}', pointer: '/lines/0/__proto__' },
    { name: '__proto__ at the top', body: '{"__proto__":{"x":1},"channel":"web","lines":[{"sku":"A","quantity":1}]}', pointer: '/__proto__' },
    { name: 'an escaped __proto__', body: '{"channel":"web","\\u005f_proto__":1,"lines":[{"sku":"A","quantity":1}]}', pointer: '/__proto__' },
    { name: 'constructor.prototype', body: '{"channel":"web","constructor":{"prototype":{"x":1}},"lines":[{"sku":"A","quantity":1}]}', pointer: '/constructor/prototype' },
    { name: 'a key with / and ~ above it', body: '{"channel":"web","lines":[{"sku":"A","quantity":1}],"a/b~c":{"__proto__":null}}', pointer: '/a~1b~0c/__proto__' },
  ])('$name is 400 VALIDATION_FAILED naming where it is, and reaches no route', async ({ body, pointer }) => {
    const response = await send(body);
    expect(response.statusCode, response.body).toBe(400);
    expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    const problem = json(response);
    expect(problem).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ in: 'body', pointer, message: "is not allowed (a key that could set an object's prototype)" }] });
    expect(problem.detail).toContain(pointer);
  });

  it('in a batch, names the item', async () => {
    const response = await send('{"adjustments":[{"sku":"A","delta":1},{"sku":"A","delta":1,"__proto__":{}}]}', `${base}/adjustments`);
    expect(json(response)).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ in: 'body', index: 1, pointer: '/adjustments/1/__proto__' }] });
  });

  it('deep down, names the object it is under, so that the answer stays small', async () => {
    const depth = 10_000;
    const response = await send(`${'{"a":'.repeat(depth)}{"__proto__":1}${'}'.repeat(depth)}`);
    const errors = json(response).errors as Array<{ pointer: string; message: string }>;
    expect(errors[0]?.pointer).toBe('/a'.repeat(32));
    expect(errors[0]?.message).toMatch(/holds __proto__ further down/);
    expect(response.body.length).toBeLessThan(1_000);
  });

  it('a constructor that is not an object, and invalid JSON, are what they were', async () => {
    const unknown = await send('{"channel":"web","lines":[{"sku":"A","quantity":1}],"constructor":"x"}');
    expect(json(unknown)).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ pointer: '/constructor', message: 'is not allowed (unknown field)' }] });
    expect(json(await send('{"__proto__":'))).toMatchObject({ code: 'MALFORMED_REQUEST' });
  });
});

/** What the server answers on a connection, and that it closed it. */
function exchange(port: number, request: string, then?: (answer: string, write: (more: string) => void) => void): Promise<{ status: number; headers: Record<string, string>; body: string; raw: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let raw = '';
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`the connection stayed open; read so far: ${raw.slice(0, 300)}`)); }, 5_000);
    socket.on('data', (chunk: Buffer) => { raw += chunk.toString('latin1'); then?.(raw, (more) => socket.write(more)); });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      const end = raw.indexOf('\r\n\r\n');
      const [statusLine = '', ...lines] = raw.slice(0, end).split('\r\n');
      const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: raw.slice(end + 4), raw });
    });
    socket.write(request);
  });
}

describe('requests the server cannot read', () => {
  let port: number;

  beforeAll(async () => {
    port = Number(new URL(await api.listen()).port);
  });

  const expectProblem = (answer: Awaited<ReturnType<typeof exchange>>, status: number, code: string): Record<string, unknown> => {
    expect(answer.status, answer.raw.slice(0, 300)).toBe(status);
    expect(answer.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(answer.headers.connection).toBe('close');
    expect(answer.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number(answer.headers['content-length'])).toBe(Buffer.byteLength(answer.body));
    const problem = JSON.parse(answer.body) as Record<string, unknown>;
    expect(problem).toMatchObject({ type: `https://stockline.dev/problems/${code.toLowerCase().replaceAll('_', '-')}`, status, code });
    return problem;
  };

  it('headers over the limit are 431 HEADERS_TOO_LARGE with the limit, and the connection is closed', async () => {
    const answer = await exchange(port, `GET ${base}/skus HTTP/1.1\r\nHost: x\r\nX-Padding: ${'secret'.repeat(4_000)}\r\n\r\n`);
    expect(expectProblem(answer, 431, 'HEADERS_TOO_LARGE')).toMatchObject({ title: 'The request headers are too large', limitBytes: 16_384 });
    expect(answer.body).not.toContain('secret');
  });

  it.each([
    { name: 'a malformed header', request: 'GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: secret\r\n\r\n' },
    { name: 'a malformed request line', request: 'GET /healthz?secret HTTP/9\r\nHost: x\r\n\r\n' },
    { name: 'an unknown method', request: 'SECRET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' },
    { name: 'a malformed chunk size', request: `POST ${base}/adjustments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer KEY\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nsecret\r\n` },
  ])('$name is 400 MALFORMED_REQUEST, and the connection is closed', async ({ request }) => {
    const answer = await exchange(port, request.replace('KEY', api.keys.write));
    expect(expectProblem(answer, 400, 'MALFORMED_REQUEST').detail).toMatch(/^the request is not valid HTTP\/1\.1/);
    expect(answer.body).not.toContain('secret');
  });

  it('a request not received in time is 408 REQUEST_TIMEOUT', async () => {
    // Node gives up on headers after 60 s; the error it then raises is raised here at once, on a real connection.
    api.app.server.once('connection', (socket) => {
      setImmediate(() => api.app.server.emit('clientError', Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), socket));
    });
    const answer = await exchange(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n');
    expectProblem(answer, 408, 'REQUEST_TIMEOUT');
  });

  it('a bad request behind one whose answer has begun closes the connection without writing into that answer', async () => {
    let sent = false;
    const answer = await exchange(port, `GET ${base}/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${api.keys.read}\r\n\r\n`, (raw, write) => {
      if (sent || !raw.includes('\r\n\r\n')) return;
      sent = true;
      write('SECRET / HTTP/1.1\r\n\r\n');
    });
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(answer.body).not.toContain('HTTP/1.1');
  });
});

describe('optional bodies', () => {
  it('a POST with Content-Type: application/json and no body reads as no body', async () => {
    const commit = await api.inject('POST', `${base}/reservations/none/commit`, { headers: { 'content-type': 'application/json' } });
    expect(json(commit).code).toBe('UNKNOWN_RESERVATION');
    const reserve = await api.inject('POST', `${base}/reservations`, { headers: { 'content-type': 'application/json' } });
    expect(json(reserve)).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ in: 'body', pointer: '', message: 'must be object' }] });
  });

  it.each([
    { method: 'PUT', url: `${base}/channels/web` },
    { method: 'POST', url: `${base}/reservations/r1/commit` },
    { method: 'POST', url: `${base}/reservations/r1/release` },
    { method: 'POST', url: `${base}/adjustments` },
  ])('a body of JSON null is a body, not an empty one: $method $url is 400 VALIDATION_FAILED', async ({ method, url }) => {
    const response = await api.inject(method, url, { body: 'null', headers: { 'content-type': 'application/json' } });
    expect(response.statusCode, response.body).toBe(400);
    expect(json(response)).toMatchObject({ code: 'VALIDATION_FAILED', detail: 'body (root) must be object', errors: [{ in: 'body', pointer: '', message: 'must be object' }] });
  });
});

describe('the query string stays out of problems (it may hold ?access_token=)', () => {
  it.each([
    { name: 'a malformed URL', path: `${base}/skus/%ZZ`, status: 400, code: 'MALFORMED_REQUEST', detail: /percent-encoding/ },
    { name: 'a path segment over the length bound', path: `${base}/skus/${'a'.repeat(600)}`, status: 400, code: 'MALFORMED_REQUEST', detail: /longer than 512 characters/ },
    { name: 'an unknown route', path: '/v1/nothing-here', status: 404, code: 'NOT_FOUND', detail: /^no route GET \/v1\/nothing-here$/ },
    { name: 'a stream key that is not valid', path: `${base}/stream`, status: 401, code: 'UNAUTHENTICATED', detail: /not valid/ },
  ])('$name: $status $code, the query string in neither detail nor instance', async ({ path, status, code, detail }) => {
    const response = await api.inject('GET', `${path}?access_token=SECRET123`, { key: null });
    expect(response.statusCode, response.body).toBe(status);
    expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    const problem = json(response);
    expect(problem).toMatchObject({ code, instance: path });
    expect(problem.detail).toMatch(detail);
    expect(response.body).not.toContain('SECRET123');
    expect(response.body).not.toContain('access_token');
  });
});
