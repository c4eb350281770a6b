// server.metricsKeyEnv: /metrics under a key of its own, which opens nothing else; public without it; refused at start when its variable is unset.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/app/config.js';
import { start } from '../../src/main.js';
import type { Running } from '../../src/main.js';
import { pollUntil, startPrometheus } from '../support/prometheus.js';

const adminKey = 'metrics-test-admin-key-0123456789';
const metricsKey = 'metrics-scrape-key-0123456789abcdef';
const variable = 'STOCKLINE_TEST_METRICS_KEY';
const cleanups: Array<() => unknown> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  delete process.env[variable];
});

function configIn(server: Record<string, unknown>): ReturnType<typeof resolveConfig> {
  const root = mkdtempSync(join(tmpdir(), 'stockline-metrics-key-'));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  return resolveConfig({ dataDir: join(root, 'data'), logLevel: 'silent', server: { host: '127.0.0.1', port: 0, ...server } });
}

async function serve(server: Record<string, unknown>): Promise<Running> {
  const running = await start({ config: configIn(server), adminKey, io: { stdout: () => undefined, stderr: () => undefined } });
  cleanups.push(() => running.close());
  return running;
}

async function get(running: Running, path: string, key?: string): Promise<{ status: number; type: string; text: string; challenge: string | null }> {
  const response = await fetch(`${running.url}${path}`, key === undefined ? {} : { headers: { authorization: `Bearer ${key}` } });
  return { status: response.status, type: response.headers.get('content-type') ?? '', text: await response.text(), challenge: response.headers.get('www-authenticate') };
}

describe('server.metricsKeyEnv', () => {
  it('makes /metrics need its key or the admin key, and the metrics key opens no tenant', async () => {
    process.env[variable] = metricsKey;
    const running = await serve({ metricsKeyEnv: variable });
    const stocked = await fetch(`${running.url}/v1/tenants/acme/adjustments`, {
      method: 'POST', headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ sku: 'TEE-M', set: 5 }),
    });
    expect(stocked.status).toBe(200);

    const anonymous = await get(running, '/metrics');
    expect(anonymous.status).toBe(401);
    expect(anonymous.type).toContain('application/problem+json');
    expect(JSON.parse(anonymous.text)).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(anonymous.challenge).toBe('Bearer realm="stockline"');

    const wrong = await get(running, '/metrics', `${metricsKey}x`);
    expect(wrong.status).toBe(401);
    expect(wrong.challenge).toContain('error="invalid_token"');
    const empty = await fetch(`${running.url}/metrics`, { headers: { authorization: 'Bearer' } });
    expect(empty.status).toBe(401);

    for (const key of [metricsKey, adminKey]) {
      const scraped = await get(running, '/metrics', key);
      expect(scraped.status).toBe(200);
      expect(scraped.type).toContain('text/plain');
      expect(scraped.text).toContain('stockline_');
    }

    // The scrape key is for /metrics alone.
    expect((await get(running, '/v1/tenants/acme/skus/TEE-M', metricsKey)).status).toBe(401);
    expect((await get(running, '/v1/tenants', metricsKey)).status).toBe(401);
    // Health stays public.
    expect((await get(running, '/healthz')).status).toBe(200);
  });

  it('is scraped by a real Prometheus that sends the key from a credentials file', async () => {
    process.env[variable] = metricsKey;
    const running = await serve({ metricsKeyEnv: variable });
    const folder = mkdtempSync(join(tmpdir(), 'stockline-metrics-credentials-'));
    cleanups.push(() => rmSync(folder, { recursive: true, force: true }));
    const credentials = join(folder, 'key');
    writeFileSync(credentials, `${metricsKey}\n`);
    const rulesFile = fileURLToPath(new URL('../../deploy/prometheus/alerts.yaml', import.meta.url));
    const target = new URL(running.url).host;
    const keyed = await startPrometheus({ targets: [target], rulesFile, credentialsFile: credentials });
    cleanups.push(() => keyed.stop());
    // A scrape that does not send the key is refused: the target is down for it.
    const keyless = await startPrometheus({ targets: [target], rulesFile });
    cleanups.push(() => keyless.stop());
    const upOf = async (server: typeof keyed): Promise<number | undefined> => (await server.query('up{job="stockline"}'))[0]?.value;
    expect(await pollUntil('the keyed scrape', () => upOf(keyed))).toBe(1);
    expect(await pollUntil('the scrape without the key', () => upOf(keyless))).toBe(0);
    expect(await keyed.query('stockline_process_process_start_time_seconds')).toHaveLength(1);
    expect(await keyless.query('stockline_process_process_start_time_seconds')).toHaveLength(0);
  });

  it('leaves /metrics public when no variable is named', async () => {
    const running = await serve({});
    const scraped = await get(running, '/metrics');
    expect(scraped.status).toBe(200);
    expect(scraped.text).toContain('stockline_');
  });

  it('refuses to start when the variable is unset, empty or short, naming it', async () => {
    const attempt = (): Promise<Running> => start({ config: configIn({ metricsKeyEnv: variable }), adminKey, io: { stdout: () => undefined, stderr: () => undefined } });
    await expect(attempt()).rejects.toThrow(`server.metricsKeyEnv: ${variable} is not set`);
    process.env[variable] = '';
    await expect(attempt()).rejects.toThrow(`server.metricsKeyEnv: ${variable} is not set`);
    process.env[variable] = 'short';
    await expect(attempt()).rejects.toThrow(`${variable}: must be at least 24 characters`);
  });

  it('refuses a variable name that is not one', () => {
    expect(() => resolveConfig({ server: { metricsKeyEnv: 'NOT A NAME' } })).toThrow('server.metricsKeyEnv');
  });
});
