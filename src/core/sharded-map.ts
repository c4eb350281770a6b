// A string-keyed map split into shards by a hash of the key, for a tenant's reservations: a Map that grows
// rehashes all of its entries in one step (about 40 ms at half a million entries, 85 ms at a million, on the
// reference machine), which holds every request in flight, and it cannot hold more than 2^24 entries. Each shard
// here holds about a sixty-fourth, so it grows in steps that size, and the whole holds 64 times as many.
// Iteration goes shard by shard, each in insertion order: no caller may depend on one order across the map.

const shardBits = 6;
const shardMask = (1 << shardBits) - 1;

/**
 * A shard number from the key's length and its last eight characters, mixed: ids differ most in their ends (a
 * UUID is random throughout, an order number counts up at its end), and hashing the whole key took three to
 * five times as long, on every lookup of a reservation.
 */
function shardIndexOf(key: string): number {
  const length = key.length;
  let hash = length;
  for (let index = length > 8 ? length - 8 : 0; index < length; index += 1) hash = Math.imul(hash ^ key.charCodeAt(index), 0x01000193);
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x45d9f3b);
  return (hash ^ (hash >>> 16)) & shardMask;
}

export class ShardedMap<V> implements Iterable<[string, V]> {
  private readonly shards: Array<Map<string, V>> = Array.from({ length: 1 << shardBits }, () => new Map<string, V>());
  private count = 0;

  constructor(entries?: Iterable<readonly [string, V]>) {
    if (entries !== undefined) for (const [key, value] of entries) this.set(key, value);
  }

  get size(): number {
    return this.count;
  }

  private shardOf(key: string): Map<string, V> {
    return this.shards[shardIndexOf(key)] as Map<string, V>;
  }

  get(key: string): V | undefined {
    return this.shardOf(key).get(key);
  }

  has(key: string): boolean {
    return this.shardOf(key).has(key);
  }

  set(key: string, value: V): this {
    const shard = this.shardOf(key);
    const before = shard.size;
    shard.set(key, value);
    this.count += shard.size - before;
    return this;
  }

  delete(key: string): boolean {
    const deleted = this.shardOf(key).delete(key);
    if (deleted) this.count -= 1;
    return deleted;
  }

  clear(): void {
    for (const shard of this.shards) shard.clear();
    this.count = 0;
  }

  *keys(): IterableIterator<string> {
    for (const shard of this.shards) yield* shard.keys();
  }

  *values(): IterableIterator<V> {
    for (const shard of this.shards) yield* shard.values();
  }

  *entries(): IterableIterator<[string, V]> {
    for (const shard of this.shards) yield* shard.entries();
  }

  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries();
  }

  forEach(callback: (value: V, key: string) => void): void {
    for (const shard of this.shards) shard.forEach((value, key) => callback(value, key));
  }

  /** A copy sharing the values: each shard copied as a whole. */
  copy(): ShardedMap<V> {
    const copy = new ShardedMap<V>();
    copy.shards.forEach((_, index) => { copy.shards[index] = new Map(this.shards[index]); });
    copy.count = this.count;
    return copy;
  }
}
