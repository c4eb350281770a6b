// server.bodyLimitBytes bounds request bodies as the configuration says; event imports keep their own larger bound.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/app/config.js';
import { start } from '../../src/main.js';
import type { Running } from '../../src/main.js';

const adminKey = 'body-limit-admin-key-0123456789';
const mebibyte = 1_048_576;
const cleanups: Array<() => unknown> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serve(server: Record<string, unknown>): Promise<Running> {
  const root = mkdtempSync(join(tmpdir(), 'stockline-body-limit-'));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  const config = resolveConfig({ dataDir: join(root, 'data'), logLevel: 'silent', server: { host: '127.0.0.1', port: 0, ...server } });
  const running = await start({ config, adminKey, io: { stdout: () => undefined, stderr: () => undefined } });
  cleanups.push(() => running.close());
  return running;
}

/** A valid JSON body of about `bytes` bytes: the value, then spaces (JSON allows them), so only its size matters. */
function paddedJson(value: unknown, bytes: number): string {
  const text = JSON.stringify(value);
  return text + ' '.repeat(Math.max(0, bytes - text.length));
}

async function post(running: Running, path: string, body: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${running.url}${path}`, {
    method: 'POST', body, headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
  });
  return { status: response.status, body: await response.json() as Record<string, unknown> };
}

const adjustment = { sku: 'TEE-M', location: 'wh1', delta: 3 };
const batchBytes = 1.5 * mebibyte;

describe('server.bodyLimitBytes', () => {
  it('takes a 1.5 MB batch when set to 4 MiB, and refuses one above it naming the limit', async () => {
    const running = await serve({ bodyLimitBytes: 4 * mebibyte });
    const taken = await post(running, '/v1/tenants/acme/adjustments', paddedJson(adjustment, batchBytes));
    expect(taken.status, JSON.stringify(taken.body)).toBe(200);
    const refused = await post(running, '/v1/tenants/acme/adjustments', paddedJson(adjustment, 4 * mebibyte + 1));
    expect(refused.status).toBe(413);
    expect(refused.body).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', limitBytes: 4 * mebibyte });
  });

  it('is 1 MiB unless set, while event imports keep their own 32 MiB', async () => {
    const running = await serve({});
    const refused = await post(running, '/v1/tenants/acme/adjustments', paddedJson(adjustment, batchBytes));
    expect(refused.status).toBe(413);
    expect(refused.body).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', limitBytes: mebibyte });
    const imported = await post(running, '/v1/tenants/acme/events', paddedJson({ events: [] }, batchBytes));
    expect(imported.status, JSON.stringify(imported.body)).not.toBe(413);
  });
});
