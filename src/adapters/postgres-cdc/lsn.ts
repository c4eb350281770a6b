// PostgreSQL log sequence numbers: `X/Y` text, 64-bit positions, and the decimal form the ledger compares.

const lsnText = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** `16/B374D848` -> 97500059720n. */
export function parseLsn(text: string): bigint {
  const match = lsnText.exec(text);
  if (match === null) throw new Error(`not an LSN: ${text}`);
  return (BigInt(`0x${match[1] as string}`) << 32n) | BigInt(`0x${match[2] as string}`);
}

export function formatLsn(position: bigint): string {
  const high = (position >> 32n).toString(16).toUpperCase();
  const low = (position & 0xffff_ffffn).toString(16).toUpperCase();
  return `${high}/${low}`;
}

/** The ledger's sourceSeq: the 64-bit position as a decimal string (at most 20 digits). */
export function lsnSeq(position: bigint): string {
  return position.toString(10);
}
