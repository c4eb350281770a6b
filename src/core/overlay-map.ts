// A map over another that it never changes: what is set or deleted stays in the overlay, the rest is read
// through. A trial of an import uses one per map of a tenant, so trying it costs what it touches, not the
// size of the tenant.

/**
 * Behaves as a copy of `base` would (same answers, same iteration order) without copying it, as long as
 * `base` itself does not change meanwhile. Iteration yields the base's entries in their order, with values
 * set since, less those deleted; then keys new to it (or deleted and set again), in the order they were set.
 */
export class OverlayMap<K, V> implements Map<K, V> {
  /** Values set since for keys still at their place in the base. */
  private readonly shadowed = new Map<K, V>();
  /** Base keys deleted (a key set again afterwards is in `added` too). */
  private readonly removed = new Set<K>();
  /** Keys after the base's, in the order they were set. */
  private readonly added = new Map<K, V>();

  constructor(private readonly base: ReadonlyMap<K, V>) {}

  get size(): number {
    return this.base.size - this.removed.size + this.added.size;
  }

  get [Symbol.toStringTag](): string {
    return 'OverlayMap';
  }

  private inBase(key: K): boolean {
    return !this.removed.has(key) && this.base.has(key);
  }

  has(key: K): boolean {
    return this.added.has(key) || this.inBase(key);
  }

  get(key: K): V | undefined {
    if (this.added.has(key)) return this.added.get(key);
    if (this.shadowed.has(key)) return this.shadowed.get(key);
    return this.removed.has(key) ? undefined : this.base.get(key);
  }

  set(key: K, value: V): this {
    if (this.inBase(key)) this.shadowed.set(key, value);
    else this.added.set(key, value);
    return this;
  }

  delete(key: K): boolean {
    if (this.added.delete(key)) return true;
    if (!this.inBase(key)) return false;
    this.removed.add(key);
    this.shadowed.delete(key);
    return true;
  }

  clear(): void {
    for (const key of this.base.keys()) this.removed.add(key);
    this.shadowed.clear();
    this.added.clear();
  }

  *entries(): MapIterator<[K, V]> {
    for (const [key, value] of this.base) {
      if (this.removed.has(key)) continue;
      yield [key, this.shadowed.has(key) ? this.shadowed.get(key) as V : value];
    }
    yield* this.added;
  }

  *keys(): MapIterator<K> {
    for (const [key] of this.entries()) yield key;
  }

  *values(): MapIterator<V> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  forEach(callback: (value: V, key: K, map: Map<K, V>) => void, thisArg?: unknown): void {
    for (const [key, value] of this.entries()) callback.call(thisArg, value, key, this);
  }
}
