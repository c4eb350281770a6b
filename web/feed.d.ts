// Types of feed.js, for the unit tests and editors; the browser loads the .js file only.

export interface FeedEntry {
  id: string;
  timeMs: number;
  kind: 'oversell' | 'stale_sequence';
  title: string;
  sku: string;
  location: string;
  detail: string;
}

export const feedEntriesMax: number;
export function describeConflict(event: unknown, receivedAtMs: number): FeedEntry | undefined;
export function createFeed(options?: { entriesMax?: number }): {
  add(entry: FeedEntry): boolean;
  entries(): FeedEntry[];
  clear(): void;
};
