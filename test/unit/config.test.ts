// The configuration file's ledger settings: defaults filled in, a wrong value named by its key.

import { describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig } from '../../src/app/config.js';

describe('ledger settings', () => {
  it('waits for the disk unless told otherwise, and keeps the other ledger defaults when one is set', () => {
    expect(resolveConfig({}).ledger.durability).toBe('fsync');
    const ledger = resolveConfig({ ledger: { durability: 'none' } }).ledger;
    expect(ledger).toEqual({ expiryIntervalMs: 1000, snapshotEveryEvents: 200_000, batchCommandsMax: 4096, durability: 'none' });
  });

  it('refuses a durability it does not know, naming the key and the choices', () => {
    expect(() => resolveConfig({ ledger: { durability: 'off' } })).toThrow(ConfigError);
    expect(() => resolveConfig({ ledger: { durability: 'off' } })).toThrow('ledger.durability: must be one of fsync, none');
  });
  it('refuses two channels with one id, even of two tenants, naming both', () => {
    const channel = (tenant: string): Record<string, unknown> => ({ id: 'storefront', tenant, type: 'webhook', webhook: { url: 'https://example.com/stock', secretEnv: 'SECRET' } });
    expect(() => resolveConfig({ channels: [channel('acme')] })).not.toThrow();
    expect(() => resolveConfig({ channels: [channel('acme'), channel('beta')] }))
      .toThrow('channels[1].id: storefront is the id of channels[0] too; every channel needs an id of its own');
  });
});
