// What the stream sends of one committed batch: events first, then availability, with the batch's position as the id.

import { describe, expect, it } from 'vitest';
import { allSkus } from '../../src/app/engine.js';
import type { CommittedBatch } from '../../src/app/engine.js';
import { batchMessages, streamDefaults } from '../../src/adapters/http/routes/stream.js';
import { emptyTenant } from '../../src/core/index.js';
import type { TenantState } from '../../src/core/index.js';

function tenantWith(onHand: Record<string, number>): TenantState {
  const tenant = emptyTenant();
  for (const [sku, units] of Object.entries(onHand)) {
    tenant.skus.set(sku, { deleted: false, version: 1, locations: new Map([['default', { onHand: units, committed: 0, reserved: 0 }]]) } as never);
  }
  return tenant;
}

const messagesOf = (tenant: TenantState, batch: CommittedBatch): string[] => [...batchMessages(() => tenant, batch, 'acme', streamDefaults)];

describe('batchMessages', () => {
  const tenant = tenantWith({ A: 5, B: 2 });

  it('sends a reservation event and the availability of what it touched, with the event\'s position as the id', () => {
    const event = { id: 'e1', type: 'order_reserved', tenant: 'acme', time: '2024-01-01T00:00:00.000Z', source: 'api', data: {} } as never;
    const messages = messagesOf(tenant, { events: [{ position: 4, event }], touched: new Map([['acme', new Set(['A'])]]) });
    expect(messages.map((message) => /event: (\w+)/.exec(message)?.[1])).toEqual(['reservation', 'availability']);
    expect(messages[1]).toMatch(/^id: 4\nevent: availability\ndata: \{"sku":"A",.*"available":5/);
  });

  it('sends the availability of every SKU of a tenant touched without events, as of the batch\'s position', () => {
    // A Kafka replica that took the tenant again from the changelog tells of it this way.
    const messages = messagesOf(tenant, { events: [], touched: new Map([['acme', new Set([allSkus])]]), position: 9 });
    expect(messages.map((message) => /"sku":"(\w+)"/.exec(message)?.[1])).toEqual(['A', 'B']);
    expect(messages[0]).not.toMatch(/^id: /);
    expect(messages[1]).toMatch(/^id: 9\n/);
  });

  it('sends nothing of a tenant the batch did not touch, or touched without events and without a position', () => {
    expect(messagesOf(tenant, { events: [], touched: new Map([['other', new Set([allSkus])]]), position: 9 })).toEqual([]);
    expect(messagesOf(tenant, { events: [], touched: new Map([['acme', new Set([allSkus])]]) })).toEqual([]);
  });
});
