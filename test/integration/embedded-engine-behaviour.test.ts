// The embedded engine passes the behaviour suite every engine must pass (test/support/engine-suite.ts).

import { EmbeddedEngine } from '../../src/adapters/sqlite/embedded-engine.js';
import { engineBehaviourSuite } from '../support/engine-suite.js';

const idempotencyRecordsMax = 20;
engineBehaviourSuite('embedded', async () => new EmbeddedEngine({ path: ':memory:', idempotencyRecordsMax }), { idempotencyRecordsMax });
