// Launches the system Chromium through playwright-core for browser tests, with flags that work on a closed network.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { BrowserContext } from 'playwright-core';

export const chromiumPath = process.env.STOCKLINE_CHROMIUM ?? '/usr/bin/chromium';

/** Without the background-networking flags Chromium dials out at start, which a closed network refuses. */
export const chromiumArgs = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Fails (never skips) when Chromium is missing: CI installs it, and a skipped browser test hides a broken dashboard. */
export function assertChromium(): void {
  if (!existsSync(chromiumPath)) {
    throw new Error(
      `Chromium not found at ${chromiumPath}. Install it with ` +
      '`apt-get update && apt-get install -y --no-install-recommends chromium` (or set STOCKLINE_CHROMIUM).',
    );
  }
}

/** A headless Chromium with a fresh profile in a temporary folder, removed on close. */
export async function launchBrowser(options: { viewport?: { width: number; height: number }; colorScheme?: 'light' | 'dark'; reducedMotion?: 'reduce' | 'no-preference' } = {}): Promise<Browser> {
  assertChromium();
  const profile = mkdtempSync(join(tmpdir(), 'stockline-chromium-'));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath,
      headless: true,
      args: chromiumArgs,
      viewport: options.viewport ?? { width: 1366, height: 768 },
      colorScheme: options.colorScheme ?? 'light',
      reducedMotion: options.reducedMotion ?? 'no-preference',
      timeout: 60_000,
    });
    return {
      context,
      async close() {
        await context.close().catch(() => undefined);
        rmSync(profile, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(profile, { recursive: true, force: true });
    throw error;
  }
}
