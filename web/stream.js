// Follows the tenant's Server-Sent Events stream and reports whether it is live, reconnecting or refused.
/* global EventSource, setTimeout, clearTimeout */

export const streamEventTypes = ['availability', 'conflict', 'reservation', 'refresh'];
export const reopenDelayMsMin = 1000;
export const reopenDelayMsMax = 30_000;

const closedState = 2;

/**
 * The wait before reopening after `attempt` failed opens: doubling from the minimum to the maximum,
 * with jitter (`random` in [0, 1)) so that many dashboards do not return at the same instant.
 */
export function reopenDelayMs(attempt, random) {
  const ceiling = Math.min(reopenDelayMsMax, reopenDelayMsMin * 2 ** Math.min(attempt, 16));
  return Math.round(ceiling / 2 + (ceiling / 2) * random);
}

/** The stream URL resuming after `lastEventId` (the query twin of the Last-Event-ID header), if there is one. */
export function resumeUrl(url, lastEventId) {
  if (lastEventId === undefined || lastEventId === '') return url;
  const resumed = new URL(url, 'http://base.invalid');
  resumed.searchParams.set('lastEventId', lastEventId);
  return /^[a-z]+:/i.test(url) ? resumed.href : `${resumed.pathname}${resumed.search}`;
}

/**
 * Opens the stream. While the connection drops and the browser retries on its own (sending
 * Last-Event-ID), the status is `reconnecting`. When the browser gives up (the server answered an
 * error), the stream is reopened here after a backoff, resuming after the last id seen;
 * `checkAccess` is asked first and may answer 'denied' (the key was refused), which stops. If no id
 * was seen yet, `onReopen` lets the caller read current state again.
 * @param {{ url: string, onEvent: (type: string, data: unknown, id: string) => void,
 *   onStatus: (status: 'connecting' | 'live' | 'reconnecting' | 'denied' | 'closed') => void,
 *   onReopen?: () => void, checkAccess?: () => Promise<'ok' | 'denied'>, EventSourceImpl?: typeof EventSource,
 *   random?: () => number }} options
 */
export function openStream({ url, onEvent, onStatus, onReopen, checkAccess, EventSourceImpl = EventSource, random = Math.random }) {
  let source;
  let timer;
  let attempt = 0;
  let closed = false;
  let lastEventId;

  const connect = (reopened) => {
    const resumable = lastEventId !== undefined;
    source = new EventSourceImpl(reopened ? resumeUrl(url, lastEventId) : url);
    source.onopen = () => {
      attempt = 0;
      onStatus('live');
      if (reopened && !resumable) onReopen?.();
    };
    source.onerror = () => {
      if (closed) return;
      if (source.readyState === closedState) reopenLater();
      else onStatus('reconnecting');
    };
    for (const type of streamEventTypes) {
      source.addEventListener(type, (message) => deliver(type, message));
    }
  };

  const deliver = (type, message) => {
    if (typeof message.lastEventId === 'string' && message.lastEventId !== '') lastEventId = message.lastEventId;
    let data;
    try {
      data = message.data === '' || message.data === undefined ? undefined : JSON.parse(message.data);
    } catch {
      return;
    }
    onEvent(type, data, message.lastEventId);
  };

  const reopenLater = () => {
    source.close();
    onStatus('reconnecting');
    timer = setTimeout(reopen, reopenDelayMs(attempt, random()));
    attempt += 1;
  };

  const reopen = async () => {
    if (closed) return;
    const access = checkAccess === undefined ? 'ok' : await checkAccess().catch(() => 'ok');
    if (closed) return;
    if (access === 'denied') {
      onStatus('denied');
      return;
    }
    connect(true);
  };

  onStatus('connecting');
  connect(false);
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      source?.close();
      onStatus('closed');
    },
  };
}
