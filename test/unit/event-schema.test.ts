// The shipped event contract is the one the ledger's limits generate: regenerate it with `npm run gen:schema`.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { eventSchema } from '../../src/app/event-schema.js';

describe('schema/inventory-event.schema.json', () => {
  it('is up to date with the ledger limits', () => {
    const shipped = JSON.parse(readFileSync('schema/inventory-event.schema.json', 'utf8')) as unknown;
    expect(shipped, 'run `npm run gen:schema` and commit the result').toEqual(eventSchema());
  });
});
