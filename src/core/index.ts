// The pure inventory ledger: commands in, events out, state folded from events.

export * from './availability.js';
export * from './commands.js';
export { decide, dueReservations } from './decide.js';
export * from './events.js';
export { evolve, replay, tenantOf } from './evolve.js';
export * from './ledger.js';
export * from './limits.js';
export * from './rejections.js';
export * from './state.js';
export * from './time.js';
export * from './snapshot.js';
export { trialState } from './trial.js';
