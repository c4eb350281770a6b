// The onRequest hook of the bench's Fastify baselines: sets X-Request-Id and compares the key with the admin
// key in constant time, as Stockline's auth hook does, refusing anything else with 401.

import { timingSafeEqual } from 'node:crypto';
import type { onRequestHookHandler } from 'fastify';

export function keyHook(adminKey: string): onRequestHookHandler {
  const expected = Buffer.from(adminKey);
  return (request, reply, done) => {
    reply.header('x-request-id', request.id);
    const key = Buffer.from(/^Bearer[ ]+(\S+)\s*$/i.exec(request.headers.authorization ?? '')?.[1] ?? '');
    if (key.length !== expected.length || !timingSafeEqual(key, expected)) {
      void reply.code(401).send({ code: 'UNAUTHENTICATED' });
      return;
    }
    done();
  };
}
