// The dashboard in a real Chromium against a real engine and server: live updates without reload, keyboard, filter.

import { mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { launchBrowser } from '../support/browser.js';
import type { Browser } from '../support/browser.js';
import { otherTenant, startDashboardServer, tenant } from '../support/dashboard-server.js';
import type { DashboardServer } from '../support/dashboard-server.js';

const screenshotPath = 'test-artifacts/dashboard.png';
/** The functional deadline for a change to reach the page: live, not on the next poll or reload. */
const liveDeadlineMs = 1_000;
/** Time for a page to load and connect on a slow CI machine; not a performance claim. */
const loadTimeoutMs = 15_000;

/** The lag the metrics report, as if the marketplace channel were a second or so behind and the web channel in step. */
const lagSource = {
  oldestUnsynced: () => [{ tenant, channel: 'marketplace', changedAtMs: Date.now() - 900 - 500 * Math.sin(Date.now() / 1500) }],
  depth: () => [],
};

let server: DashboardServer;
let browser: Browser;

async function seed(): Promise<void> {
  await server.call('PUT', `/v1/tenants/${tenant}/channels/web`, { bufferUnits: 1 });
  await server.call('PUT', `/v1/tenants/${tenant}/channels/b2b`, { bufferUnits: 0, maxUnits: 50 });
  await server.call('PUT', `/v1/tenants/${tenant}/channels/marketplace`, { bufferUnits: 2 });
  const adjustments = [
    { sku: 'TEE-M', location: 'wh-1', delta: 10 },
    { sku: 'TEE-L', location: 'wh-1', delta: 24 },
    { sku: 'TEE-S', location: 'wh-2', delta: 3 },
    { sku: 'HOODIE-M', location: 'wh-1', delta: 40 },
    { sku: 'HOODIE-L', location: 'wh-2', delta: 75 },
    { sku: 'CAP-BLK', location: 'wh-1', delta: 120 },
    { sku: 'MUG-01', location: 'wh-2', delta: 8 },
  ];
  // Sorted after the SKUs above, so that those are among the first 50 rows and the rest sit behind "Show more".
  for (let index = 1; index <= 60; index += 1) adjustments.push({ sku: `WOOL-SOCK-${String(index).padStart(2, '0')}`, location: 'wh-1', delta: 5 + (index * 7) % 90 });
  await server.call('POST', `/v1/tenants/${tenant}/adjustments`, { adjustments });
  await server.call('POST', `/v1/tenants/${otherTenant}/adjustments`, { sku: 'SECRET-1', location: 'wh-9', delta: 1 }, server.keys[otherTenant]);
}

async function connect(page: Page, key: string, tenantId?: string): Promise<void> {
  await page.goto(`${server.url}/${tenantId === undefined ? '' : `?tenant=${tenantId}`}`);
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Connect' }).click();
}

/** The number a cell shows (its `data-value`), or null while the row is not on the page. */
function valueOf(page: Page, sku: string, column: string): Promise<unknown> {
  return page.evaluate(`document.querySelector('tr[data-sku="${sku}"] [data-column="${column}"]')?.dataset.value ?? null`);
}

/** Errors the page threw or logged: a dashboard that works must not leave any. */
function collectErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  // Chromium logs every non-2xx answer as a console error; the 401s and 403s asked for here are expected.
  page.on('console', (message) => { if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) errors.push(message.text()); });
  return errors;
}

beforeAll(async () => {
  mkdirSync('test-artifacts', { recursive: true });
  server = await startDashboardServer({
    lag: { source: lagSource, channels: [{ tenant, channel: 'web' }, { tenant, channel: 'b2b' }, { tenant, channel: 'marketplace' }] },
    // A change of more SKUs than this reaches the page as one `refresh`: the wide tenant's policy changes do.
    stream: { skusPerBatchMax: 1_000 },
  });
  await seed();
  browser = await launchBrowser({ viewport: { width: 1366, height: 768 } });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe('the dashboard', { timeout: 90_000 }, () => {
  it('shows a reservation live without a reload, filters from the keyboard, and keeps a screenshot', async () => {
    const page = await browser.context.newPage();
    const errors = collectErrors(page);
    await connect(page, server.keys[tenant] as string, tenant);

    await expect.poll(() => valueOf(page, 'TEE-M', 'available'), { timeout: loadTimeoutMs }).toBe('10');
    expect(await valueOf(page, 'TEE-M', 'channel:web')).toBe('9');
    await expect.poll(() => page.locator('#connection').getAttribute('data-state'), { timeout: loadTimeoutMs }).toBe('live');

    // A marker on window survives only if the page is never reloaded.
    await page.evaluate('window.stocklineMarker = 1');
    await server.call('POST', `/v1/tenants/${tenant}/reservations`, { channel: 'web', lines: [{ sku: 'TEE-M', quantity: 3 }], ttlSeconds: 600 });
    await page.waitForFunction(`(() => {
      const value = (column) => document.querySelector('tr[data-sku="TEE-M"] [data-column="' + column + '"]')?.dataset.value;
      return value('reserved') === '3' && value('available') === '7' && value('channel:web') === '6';
    })()`, undefined, { timeout: liveDeadlineMs });
    expect(await page.evaluate('window.stocklineMarker')).toBe(1);
    // The changed cells flash; with reduced motion the highlight stays still instead of fading.
    expect(await page.locator('tr[data-sku="TEE-M"] [data-column="reserved"]').getAttribute('class')).toContain('flash-up');
    await page.emulateMedia({ reducedMotion: 'reduce' });
    expect(await page.evaluate(`getComputedStyle(document.querySelector('tr[data-sku="TEE-M"] [data-column="available"]')).animationName`)).toBe('none');
    await page.emulateMedia({ reducedMotion: 'no-preference' });

    await page.locator('body').click({ position: { x: 5, y: 300 } });
    let reached = false;
    for (let presses = 0; presses < 20 && !reached; presses += 1) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate("document.activeElement?.id === 'filter'") === true;
    }
    expect(reached, 'Tab reaches the SKU filter').toBe(true);
    await page.keyboard.type('hoodie');
    await expect.poll(() => page.locator('#sku-body tr').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-sku'))), { timeout: loadTimeoutMs })
      .toEqual(['HOODIE-L', 'HOODIE-M']);
    await page.keyboard.press('Control+A');
    await page.keyboard.press('Backspace');
    await expect.poll(() => page.locator('#sku-body tr').count(), { timeout: loadTimeoutMs }).toBe(50);
    await expect(page.getByRole('button', { name: /^Show \d+ more$/ }).isVisible()).resolves.toBe(true);

    await makeActivity();
    await page.locator('#filter').blur();
    await expect.poll(() => page.locator('#conflict-feed li').count(), { timeout: loadTimeoutMs }).toBeGreaterThanOrEqual(2);
    await expect.poll(() => page.locator('#lag-legend li .legend-name').allTextContents(), { timeout: loadTimeoutMs }).toContain('marketplace');
    await page.waitForTimeout(1_200); // one more chart redraw, so the newest second is on the screenshot
    await page.screenshot({ path: screenshotPath });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('finds the tenant of a tenant key by itself, and refuses a bad key with a clear message', async () => {
    const page = await browser.context.newPage();
    const errors = collectErrors(page);
    await connect(page, 'sk_0000000000000000_not-a-real-key-not-a-real-key-not-a-real-k');
    await expect.poll(() => page.locator('#gate-error').textContent(), { timeout: loadTimeoutMs }).toContain('did not accept this key');

    await page.getByLabel('API key').fill(server.keys[otherTenant] as string);
    await page.getByRole('button', { name: 'Connect' }).click();
    await expect.poll(() => page.locator('#tenant-name').textContent(), { timeout: loadTimeoutMs }).toBe(otherTenant);
    await expect.poll(() => page.locator('tr[data-sku]').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-sku'))), { timeout: loadTimeoutMs })
      .toEqual(['SECRET-1']);
    expect(await page.evaluate("sessionStorage.getItem('stockline.apiKey')")).toBe(server.keys[otherTenant]);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('says reconnecting when the stream drops, then resumes and stays live', async () => {
    const page = await browser.context.newPage();
    await connect(page, server.keys[tenant] as string, tenant);
    await expect.poll(() => page.locator('#connection').getAttribute('data-state'), { timeout: loadTimeoutMs }).toBe('live');
    server.app.server.closeAllConnections();
    await expect.poll(() => page.locator('#connection').getAttribute('data-state'), { timeout: loadTimeoutMs, interval: 50 }).toBe('reconnecting');
    expect(await page.locator('#connection-text').textContent()).toBe('Reconnecting…');
    await expect.poll(() => page.locator('#connection').getAttribute('data-state'), { timeout: loadTimeoutMs }).toBe('live');
    const before = Number(await valueOf(page, 'MUG-01', 'onHand'));
    await server.call('POST', `/v1/tenants/${tenant}/adjustments`, { sku: 'MUG-01', location: 'wh-2', delta: 4 });
    await expect.poll(() => valueOf(page, 'MUG-01', 'onHand'), { timeout: loadTimeoutMs }).toBe(String(before + 4));
    await page.close();
  });

  it('finds SKUs beyond the first 5,000 by the beginning of their name, typed in either case, and keeps the summary', async () => {
    const wide = 'wide';
    for (let first = 0; first < 5_050; first += 1_000) {
      const adjustments = Array.from({ length: Math.min(1_000, 5_050 - first) }, (_, index) => ({ sku: `WIDE-${String(first + index).padStart(4, '0')}`, location: 'wh-1', delta: 1 }));
      await server.call('POST', `/v1/tenants/${wide}/adjustments`, { adjustments }, server.adminKey);
    }
    await server.call('PUT', `/v1/tenants/${wide}/channels/web`, { bufferUnits: 0 }, server.adminKey);
    const page = await browser.context.newPage();
    const errors = collectErrors(page);
    await connect(page, server.adminKey, wide);
    await expect.poll(() => page.locator('#stock-summary').textContent(), { timeout: loadTimeoutMs }).toContain('first 5,000 loaded, the filter searches the rest');
    const shown = (): Promise<Array<string | null>> => page.locator('#sku-body tr').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-sku')));
    // The server matches the beginning of a SKU in its case: typed in lower case, it is asked in upper case too.
    await page.locator('#filter').fill('wide-504');
    await expect.poll(shown, { timeout: loadTimeoutMs }).toEqual(Array.from({ length: 10 }, (_, index) => `WIDE-504${index}`));
    expect(await valueOf(page, 'WIDE-5049', 'channel:web')).toBe('1');
    // A policy change of every SKU comes as one `refresh`: the rows the search found, beyond the first pages, are
    // read again too, not left at what the channel sold before.
    await server.call('PUT', `/v1/tenants/${wide}/channels/web`, { maxUnits: 0 }, server.adminKey);
    await expect.poll(() => valueOf(page, 'WIDE-5049', 'channel:web'), { timeout: loadTimeoutMs }).toBe('0');
    expect(await shown()).toHaveLength(10);
    // No SKU starts with a space: nothing is asked, and the summary stays as it was.
    await page.locator('#filter').fill('wide 5');
    await expect.poll(() => page.locator('#table-empty').textContent(), { timeout: loadTimeoutMs })
      .toBe('No SKU contains “wide 5” among those loaded, or starts with it beyond them.');
    await page.waitForTimeout(500);
    expect(await page.locator('#stock-summary').textContent()).toContain('SKUs ·');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('lets an admin key pick a tenant', async () => {
    const page = await browser.context.newPage();
    await connect(page, server.adminKey);
    await expect.poll(() => page.locator('#gate-error').textContent(), { timeout: loadTimeoutMs }).toContain('admin key');
    await page.locator('#tenant-input').fill(otherTenant);
    await page.getByRole('button', { name: 'Connect' }).click();
    await expect.poll(() => valueOf(page, 'SECRET-1', 'onHand'), { timeout: loadTimeoutMs }).toBe('1');
    await page.locator('#tenant-switch').fill(tenant);
    await page.locator('#tenant-switch').press('Enter');
    await expect.poll(() => valueOf(page, 'TEE-L', 'onHand'), { timeout: loadTimeoutMs }).toBe('24');
    expect(await page.locator('tr[data-sku="SECRET-1"]').count()).toBe(0);
    // Not a tenant id: said in words, not as the server's pattern, and the tenant on screen stays.
    await page.locator('#tenant-switch').fill('Bad Tenant!');
    await page.locator('#tenant-switch').press('Enter');
    await expect.poll(() => page.locator('#notice').textContent(), { timeout: loadTimeoutMs })
      .toBe('“Bad Tenant!” is not a tenant id: one is lower-case letters, digits, _ and -, starting with a letter or a digit.');
    expect(await valueOf(page, 'TEE-L', 'onHand')).toBe('24');
    await page.close();
  });
});

/** Holds, commits and two conflicts, so that the charts and the feed have something to show. */
async function makeActivity(): Promise<void> {
  const skus = ['TEE-L', 'HOODIE-M', 'HOODIE-L', 'CAP-BLK', 'WOOL-SOCK-07'];
  for (let round = 0; round < 16; round += 1) {
    const sku = skus[round % skus.length] as string;
    const held = await server.call('POST', `/v1/tenants/${tenant}/reservations`, { channel: round % 3 === 0 ? 'b2b' : 'web', lines: [{ sku, quantity: 1 }], ttlSeconds: 600 }) as { id: string };
    if (round % 2 === 0) await server.call('POST', `/v1/tenants/${tenant}/reservations/${held.id}/commit`, {});
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  await server.call('POST', `/v1/tenants/${tenant}/adjustments`, { sku: 'MUG-01', location: 'wh-2', set: 8, source: 'erp', sourceSeq: '200' });
  await server.call('POST', `/v1/tenants/${tenant}/adjustments`, { sku: 'MUG-01', location: 'wh-2', set: 6, source: 'erp', sourceSeq: '150' }).catch(() => undefined);
  await server.call('POST', `/v1/tenants/${tenant}/orders`, { channel: 'marketplace', orderRef: 'MP-20931', lines: [{ sku: 'TEE-S', quantity: 5 }] }).catch(() => undefined);
}
