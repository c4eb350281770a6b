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

  it('refuses an expiry interval of 0 or below 100 ms, which would keep expired holds held for ever', () => {
    const refusal = 'ledger.expiryIntervalMs: must be at least 100 (ms), got 0; the expiry ticks release expired holds and forget old idempotency records, so they cannot be turned off';
    expect(() => resolveConfig({ ledger: { expiryIntervalMs: 0 } })).toThrow(ConfigError);
    expect(() => resolveConfig({ ledger: { expiryIntervalMs: 0 } })).toThrow(refusal);
    expect(() => resolveConfig({ ledger: { expiryIntervalMs: 99 } })).toThrow('ledger.expiryIntervalMs: must be at least 100 (ms), got 99;');
    // What `stockline demo` passes.
    expect(resolveConfig({ ledger: { expiryIntervalMs: 100 } }).ledger.expiryIntervalMs).toBe(100);
    expect(resolveConfig({}).ledger.expiryIntervalMs).toBe(1000);
  });

  it('refuses two channels with one id, even of two tenants, naming both', () => {
    const channel = (tenant: string): Record<string, unknown> => ({ id: 'storefront', tenant, type: 'webhook', webhook: { url: 'https://example.com/stock', secretEnv: 'SECRET' } });
    expect(() => resolveConfig({ channels: [channel('acme')] })).not.toThrow();
    expect(() => resolveConfig({ channels: [channel('acme'), channel('beta')] }))
      .toThrow('channels[1].id: storefront is the id of channels[0] too; every channel needs an id of its own');
  });

  it('refuses two sources the ledger would know by one slot or name, even on two servers', () => {
    const postgres = (server: string, slot: string): Record<string, unknown> => ({
      type: 'postgres', name: `warehouse-${server}`, connectionString: `postgres://cdc@${server}:5432/erp`, table: 'inventory.stock',
      columns: { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty' }, slot, publication: 'stockline_wh',
    });
    const debezium = (name: string): Record<string, unknown> => ({ type: 'debezium', name, columns: { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty' }, topic: 'erp.inventory.stock' });
    expect(() => resolveConfig({ sources: [postgres('db1', 'stockline_a'), postgres('db2', 'stockline_b'), debezium('erp'), debezium('wms')] })).not.toThrow();
    expect(() => resolveConfig({ sources: [postgres('db1', 'stockline_a'), postgres('db2', 'stockline_a')] }))
      .toThrow('sources[1]: its slot stockline_a is that of sources[0] too; every postgres source needs a slot of its own');
    expect(() => resolveConfig({ sources: [debezium('erp'), postgres('db1', 'erp'), debezium('erp')] }))
      .toThrow('sources[2]: its name erp is that of sources[0] too; every debezium source needs a name of its own');
  });
});

describe('settings that did nothing', () => {
  it('refuses alerts.reconciliationLagSeconds, saying where the lag threshold is', () => {
    expect(() => resolveConfig({ alerts: { reconciliationLagSeconds: 5 } })).toThrow(ConfigError);
    expect(() => resolveConfig({ alerts: { reconciliationLagSeconds: 5 } })).toThrow(
      "alerts.reconciliationLagSeconds: is not a setting (it never changed anything): the reconciliation lag alert's threshold is in deploy/prometheus/alerts.yaml (StocklineReconciliationLagHigh); remove it from this file");
    expect(() => resolveConfig({ alerts: {} })).toThrow('alerts: is not a setting');
    expect(resolveConfig({})).not.toHaveProperty('alerts');
  });

  it('takes server.bodyLimitBytes, 1 MiB unless set', () => {
    expect(resolveConfig({}).server.bodyLimitBytes).toBe(1_048_576);
    expect(resolveConfig({ server: { bodyLimitBytes: 4_194_304 } }).server).toEqual({ host: '0.0.0.0', port: 8080, bodyLimitBytes: 4_194_304 });
  });
});
