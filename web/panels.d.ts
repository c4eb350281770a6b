// Types of the pure parts of panels.js, for the unit tests and editors; the browser loads the .js file only.

export const lagAlertSeconds: number;
export const chartSpanMsMin: number;
export function formatSeconds(seconds: number): string;
export function formatRate(perSecond: number): string;
export function chartStartMs(nowMs: number, openedAtMs: number): number;
