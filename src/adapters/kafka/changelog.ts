// The changelog topic: a processor's state as compacted records, one per tenant entity, and its restore.
//
// One record per entity (a SKU, a reservation, a channel policy, a source sequence, an idempotency
// record) rather than one per tenant: a transaction writes only what it changed, and no record
// grows with the tenant (a tenant with 10,000 reservations would pass Kafka's 1 MiB record limit).
// Keys are `<tenant>/<kind>/<id>`; a forgotten idempotency key or reservation is a tombstone. The record `#next`
// holds the next command offset of the partition and the time of its last command (so a new owner
// never stamps a command earlier), written in the same transaction as the state.

import { emptyTenant, fromSnapshot, sourceSeqKey, toSnapshot } from '../../core/index.js';
import type { Execution, InventoryEvent, LedgerState, StateSnapshot, TenantSnapshot, TenantState } from '../../core/index.js';

export type EntityKind = 'sku' | 'reservation' | 'channel' | 'seq' | 'key';

const entityKinds: ReadonlySet<string> = new Set<EntityKind>(['sku', 'reservation', 'channel', 'seq', 'key']);

/** The key of the record holding a partition's next command offset; tenant ids never start with `#`. */
export const nextOffsetKey = '#next';

export function entityKey(tenant: string, kind: EntityKind, id: string): string {
  return `${tenant}/${kind}/${id}`;
}

export function parseEntityKey(key: string): { tenant: string; kind: EntityKind; id: string } | undefined {
  const first = key.indexOf('/');
  const second = first < 0 ? -1 : key.indexOf('/', first + 1);
  if (first <= 0 || second < 0) return undefined;
  const kind = key.slice(first + 1, second);
  if (!entityKinds.has(kind)) return undefined;
  return { tenant: key.slice(0, first), kind: kind as EntityKind, id: key.slice(second + 1) };
}

/** Adds the keys of every entity an executed command changed (its events, its idempotency record). */
export function noteChangedEntities(keys: Set<string>, tenant: string, execution: Execution): void {
  for (const event of execution.outcome.events) noteEventEntities(keys, event);
  if (execution.remembered !== undefined) keys.add(entityKey(tenant, 'key', execution.remembered.key));
  for (const key of execution.forgotten ?? []) keys.add(entityKey(tenant, 'key', key));
  // Gone from the state, so their records become tombstones and compaction drops them.
  for (const id of execution.forgottenReservations ?? []) keys.add(entityKey(tenant, 'reservation', id));
}

/** Mirrors what evolve() changes for each event type. */
function noteEventEntities(keys: Set<string>, event: InventoryEvent): void {
  const { tenant } = event;
  switch (event.type) {
    case 'stock_adjustment':
      keys.add(entityKey(tenant, 'sku', event.data.sku));
      if (event.sourceSeq !== undefined) keys.add(entityKey(tenant, 'seq', sourceSeqKey(event.data.sku, event.data.location, event.source)));
      break;
    case 'order_reserved':
    case 'order_committed':
    case 'reservation_released':
    case 'order_fulfilled':
      keys.add(entityKey(tenant, 'reservation', event.data.reservationId));
      for (const line of event.data.lines) keys.add(entityKey(tenant, 'sku', line.sku));
      break;
    case 'sku_deleted':
    case 'sku_restored':
      keys.add(entityKey(tenant, 'sku', event.data.sku));
      break;
    case 'channel_policy_set':
      keys.add(entityKey(tenant, 'channel', event.data.channel));
      break;
    case 'sync_complete':
    case 'conflict_detected':
      break;
  }
}

/** The record value of an entity as it is now: its plain-data form (as in snapshots), or null when it is gone. */
export function entityValue(state: LedgerState, key: string): string | null {
  const parsed = parseEntityKey(key);
  if (parsed === undefined) throw new Error(`not a changelog entity key: ${JSON.stringify(key)}`);
  const { tenant: name, kind, id } = parsed;
  const tenant = state.tenants.get(name);
  if (tenant === undefined) return null;
  const one = emptyTenant();
  switch (kind) {
    case 'sku': return copied(tenant.skus, one.skus, id, () => snapshotOf(one).skus[id]);
    case 'reservation': return copied(tenant.reservations, one.reservations, id, () => snapshotOf(one).reservations[id]);
    case 'channel': return copied(tenant.channels, one.channels, id, () => snapshotOf(one).channels[id]);
    case 'seq': return copied(tenant.sourceSeqs, one.sourceSeqs, id, () => snapshotOf(one).sourceSeqs[id]);
    case 'key': return copied(tenant.idempotency, one.idempotency, id, () => snapshotOf(one).idempotency?.[id]);
  }
}

function copied<V>(from: Map<string, V>, into: Map<string, V>, id: string, read: () => unknown): string | null {
  const value = from.get(id);
  if (value === undefined) return null;
  into.set(id, value);
  return JSON.stringify(read());
}

/** The snapshot code is the one definition of the plain-data form; a one-entity tenant reuses it. */
function snapshotOf(tenant: TenantState): TenantSnapshot {
  return toSnapshot({ tenants: new Map([['t', tenant]]) }, { withIdempotency: true }).tenants.t as TenantSnapshot;
}

type Bucket = Record<string, unknown>;

/** The value of `#next`; `lastTimeMs` is absent from the records of processors that did not keep it. */
export interface NextRecord {
  nextOffset: string;
  lastTimeMs?: number;
}

/** Folds changelog records, oldest first, into a state; later records of a key replace earlier ones. */
export class ChangelogRestore {
  private readonly tenants = new Map<string, Record<'skus' | 'reservations' | 'channels' | 'sourceSeqs' | 'idempotency', Bucket>>();
  nextOffset: bigint | undefined;
  /** The time the partition last gave a command; 0 when `#next` was written without it (by an older processor). */
  lastTimeMs = 0;
  /** Records whose key is neither an entity nor `#next`. */
  skipped = 0;

  apply(key: string | undefined, value: Buffer | undefined): void {
    if (key === nextOffsetKey) {
      if (value === undefined) return;
      const next = JSON.parse(value.toString('utf8')) as NextRecord;
      this.nextOffset = BigInt(next.nextOffset);
      if (typeof next.lastTimeMs === 'number' && Number.isSafeInteger(next.lastTimeMs)) this.lastTimeMs = next.lastTimeMs;
      return;
    }
    const parsed = key === undefined ? undefined : parseEntityKey(key);
    if (parsed === undefined) {
      this.skipped += 1;
      return;
    }
    const bucket = this.bucketOf(parsed.tenant, parsed.kind);
    if (value === undefined) delete bucket[parsed.id];
    else bucket[parsed.id] = JSON.parse(value.toString('utf8')) as unknown;
  }

  private bucketOf(tenant: string, kind: EntityKind): Bucket {
    let buckets = this.tenants.get(tenant);
    if (buckets === undefined) {
      // Null prototypes: an id such as `__proto__` is data here, not a prototype.
      buckets = { skus: Object.create(null) as Bucket, reservations: Object.create(null) as Bucket, channels: Object.create(null) as Bucket, sourceSeqs: Object.create(null) as Bucket, idempotency: Object.create(null) as Bucket };
      this.tenants.set(tenant, buckets);
    }
    const names = { sku: 'skus', reservation: 'reservations', channel: 'channels', seq: 'sourceSeqs', key: 'idempotency' } as const;
    return buckets[names[kind]];
  }

  state(): LedgerState {
    const snapshot: StateSnapshot = { tenants: Object.create(null) as StateSnapshot['tenants'] };
    for (const [tenant, buckets] of this.tenants) snapshot.tenants[tenant] = buckets as unknown as TenantSnapshot;
    return fromSnapshot(snapshot);
  }
}

/** The records a transaction writes for the entities it changed, read from the state after its commands. */
export function changelogRecords(state: LedgerState, keys: Iterable<string>): Array<{ key: string; value: string | null }> {
  const records: Array<{ key: string; value: string | null }> = [];
  for (const key of keys) records.push({ key, value: entityValue(state, key) });
  return records;
}
