/**
 * Second-chance eviction for a bounded Map kept in insertion order, whose values carry a `used` flag
 * that a hit sets. Down to `max` entries: the oldest is dropped unless it is flagged (or is `added`,
 * the entry just stored), in which case it loses its flag and moves to the end. Within one pass an
 * unflagged entry comes up, so this ends.
 *
 * The point is that a hit only writes a flag. Keeping exact LRU order means re-inserting the key on
 * every hit, and V8 reallocates a long-lived Map's hash table in the old generation when it churns:
 * garbage there every few calls (BENCHMARKS.md, "Hits that leave long-lived Maps alone").
 */
export function evictSecondChance<K, V extends { used: boolean }>(map: Map<K, V>, max: number, added: K): void {
  if (max < 1) {
    map.clear();
    return;
  }
  while (map.size > max) {
    const [oldest, value] = map.entries().next().value as [K, V];
    map.delete(oldest);
    if (value.used || oldest === added) {
      value.used = false;
      map.set(oldest, value);
    }
  }
}
