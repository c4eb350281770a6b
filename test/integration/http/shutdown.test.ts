// Closing the server: a request in flight is answered, its connection is not kept alive, and close returns once
// the answers are out, rather than when the clients' keep-alive connections time out.

import { once } from 'node:events';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { startTestApi, tenant } from '../../support/http.js';

describe('closing the server', () => {
  it('answers a request in flight with Connection: close, ends its connection and finishes closing', async () => {
    const api = await startTestApi();
    try {
      const url = new URL(await api.listen());
      const socket = connect(Number(url.port), url.hostname);
      await once(socket, 'connect');
      let answer = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => { answer += chunk; });
      const ended = once(socket, 'end');
      // The headers now and the body once the server closes: the request is routed, in flight, when close starts.
      const routed = once(api.app.server, 'request');
      const body = JSON.stringify({ sku: 'A', delta: 5 });
      socket.write(`POST /v1/tenants/${tenant}/adjustments HTTP/1.1\r\nHost: stockline\r\nConnection: keep-alive\r\nAuthorization: Bearer ${api.keys.write}\r\n`
        + `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`);
      await routed;
      const closed = api.app.close();
      socket.write(body);
      // Without Connection: close the server would keep the socket for its keep-alive timeout (72 s), and close with it.
      await ended;
      await closed;
      expect(answer).toMatch(/^HTTP\/1\.1 200 /);
      expect(answer.toLowerCase()).toContain('\r\nconnection: close\r\n');
      expect(api.engine.tenant(tenant)?.skus.get('A')?.locations.get('default')?.onHand).toBe(5);
      socket.destroy();
    } finally {
      await api.engine.close();
    }
  });
});
