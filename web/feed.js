// The incident feed: conflict_detected events described for people, newest first, bounded; pure.

export const feedEntriesMax = 50;

/** The event's payload, whether the stream sends the whole envelope or only its `data`. */
function payloadOf(event) {
  return event !== null && typeof event === 'object' && event.data !== null && typeof event.data === 'object' ? event.data : event;
}

function units(count) {
  return `${count} ${count === 1 ? 'unit' : 'units'}`;
}

/**
 * One feed entry for a conflict_detected event, or undefined if it is not one.
 * @returns {{ id: string, timeMs: number, kind: 'oversell' | 'stale_sequence', title: string, sku: string, location: string, detail: string } | undefined}
 */
export function describeConflict(event, receivedAtMs) {
  const data = payloadOf(event);
  if (data === null || typeof data !== 'object' || typeof data.sku !== 'string') return undefined;
  if (data.kind !== 'oversell' && data.kind !== 'stale_sequence') return undefined;
  const parsedMs = typeof event.time === 'string' ? Date.parse(event.time) : Number.NaN;
  const location = typeof data.location === 'string' ? data.location : '';
  const entry = {
    id: typeof event.id === 'string' ? event.id : `${data.kind}:${data.sku}:${location}:${receivedAtMs}`,
    timeMs: Number.isFinite(parsedMs) ? parsedMs : receivedAtMs,
    kind: data.kind,
    sku: data.sku,
    location,
  };
  if (data.kind === 'oversell') {
    const shortfall = typeof data.shortfall === 'number' ? units(data.shortfall) : 'units';
    const seller = typeof data.channel === 'string' ? `${data.channel} sold ${shortfall} beyond stock` : `A recount left ${shortfall} sold beyond stock`;
    const order = typeof data.orderRef === 'string' ? ` (order ${data.orderRef})` : '';
    return { ...entry, title: 'Oversell', detail: `${seller}${order}` };
  }
  const source = typeof data.conflictSource === 'string' ? data.conflictSource : 'a source';
  const sequences = data.incomingSeq !== undefined && data.appliedSeq !== undefined
    ? `: sequence ${data.incomingSeq} is not newer than ${data.appliedSeq}` : '';
  return { ...entry, title: 'Stale update', detail: `Refused an update from ${source}${sequences}` };
}

/** Newest-first entries, at most `entriesMax`; an entry seen before (a replay after reconnecting) is not added twice. */
export function createFeed({ entriesMax = feedEntriesMax } = {}) {
  let entries = [];
  return {
    /** Adds an entry; returns false if it was already there. */
    add(entry) {
      if (entries.some((known) => known.id === entry.id)) return false;
      entries = [entry, ...entries].slice(0, entriesMax);
      return true;
    },
    entries: () => entries.slice(),
    clear() {
      entries = [];
    },
  };
}
