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

const removed = Symbol('removed');

/** Entries of the order kept per chunk: no array of a million entries is copied when it grows. */
const orderChunkEntries = 4096;

interface OrderChunk<V> {
  keys: string[];
  values: Array<V | typeof removed>;
}

/**
 * A ShardedMap that iterates in insertion order, as a Map does, for a tenant's idempotency records: they are
 * made once and forgotten oldest first, so the order is a queue of chunks, dropped from the front as they
 * empty. Setting a key that is there keeps its place, and deleting one that is not the oldest marks its
 * place; both look for it from the front, where only the oldest is found at once (no caller does either
 * otherwise).
 */
export class ShardedOrderedMap<V> implements Iterable<[string, V]> {
  private index = new ShardedMap<V>();
  private chunks: Array<OrderChunk<V>> = [];
  /** Places of the first chunk before this one are empty. */
  private head = 0;

  constructor(entries?: Iterable<readonly [string, V]>) {
    if (entries !== undefined) for (const [key, value] of entries) this.set(key, value);
  }

  get size(): number {
    return this.index.size;
  }

  get(key: string): V | undefined {
    return this.index.get(key);
  }

  has(key: string): boolean {
    return this.index.has(key);
  }

  set(key: string, value: V): this {
    if (this.index.has(key)) {
      const [chunk, place] = this.placeOf(key);
      chunk.values[place] = value;
    } else {
      let last = this.chunks[this.chunks.length - 1];
      if (last === undefined || last.keys.length === orderChunkEntries) {
        last = { keys: [], values: [] };
        this.chunks.push(last);
      }
      last.keys.push(key);
      last.values.push(value);
    }
    this.index.set(key, value);
    return this;
  }

  delete(key: string): boolean {
    if (!this.index.delete(key)) return false;
    const [chunk, place] = this.placeOf(key);
    chunk.values[place] = removed;
    this.dropRemovedFront();
    return true;
  }

  clear(): void {
    this.index.clear();
    this.chunks = [];
    this.head = 0;
  }

  *entries(): IterableIterator<[string, V]> {
    let start = this.head;
    for (const chunk of this.chunks) {
      for (let place = start; place < chunk.keys.length; place += 1) {
        const value = chunk.values[place] as V | typeof removed;
        if (value !== removed) yield [chunk.keys[place] as string, value];
      }
      start = 0;
    }
  }

  *keys(): IterableIterator<string> {
    for (const [key] of this.entries()) yield key;
  }

  *values(): IterableIterator<V> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries();
  }

  forEach(callback: (value: V, key: string) => void): void {
    for (const [key, value] of this.entries()) callback(value, key);
  }

  /** A copy sharing the values. */
  copy(): ShardedOrderedMap<V> {
    const copy = new ShardedOrderedMap<V>();
    copy.index = this.index.copy();
    copy.chunks = this.chunks.map((chunk) => ({ keys: chunk.keys.slice(), values: chunk.values.slice() }));
    copy.head = this.head;
    return copy;
  }

  /** The chunk and place of a key that is in the map, looked for from the front, where the oldest is. */
  private placeOf(key: string): [OrderChunk<V>, number] {
    let start = this.head;
    for (const chunk of this.chunks) {
      for (let place = start; place < chunk.keys.length; place += 1) {
        if (chunk.keys[place] === key && chunk.values[place] !== removed) return [chunk, place];
      }
      start = 0;
    }
    throw new Error(`the order of a ShardedOrderedMap has lost ${JSON.stringify(key)}`);
  }

  /** Moves the front past removed places, dropping chunks it leaves empty. */
  private dropRemovedFront(): void {
    for (;;) {
      const first = this.chunks[0];
      if (first === undefined) return;
      while (this.head < first.keys.length && first.values[this.head] === removed) this.head += 1;
      if (this.head < first.keys.length || first.keys.length < orderChunkEntries) return;
      this.chunks.shift();
      this.head = 0;
    }
  }
}
