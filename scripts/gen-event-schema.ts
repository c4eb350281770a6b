// Writes schema/inventory-event.schema.json from the ledger's limits, so the contract and the code agree.
// Run: npx tsx scripts/gen-event-schema.ts   (a test fails when the committed file is out of date)

import { writeFileSync } from 'node:fs';
import { eventSchema } from '../src/app/event-schema.js';

writeFileSync(new URL('../schema/inventory-event.schema.json', import.meta.url), `${JSON.stringify(eventSchema(), null, 2)}\n`);
