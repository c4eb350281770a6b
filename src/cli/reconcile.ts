// `stockline reconcile [--tenant T] [--channel C] [--repair] [--json]`: compares channels with the desired state.

import { namePattern, tenantIdPattern } from '../core/index.js';
import type { ChannelConnector } from '../adapters/channels/connector.js';
import { reconcile } from '../app/reconcile.js';
import type { ReconcileProgress, ReconcileReport, ReconcileStore } from '../app/reconcile.js';
import { parseArgs, UsageError } from './io.js';
import type { CliIo } from './io.js';

export const reconcileUsage = `usage: stockline reconcile [--tenant T] [--channel C] [--repair] [--json]

Reads what each channel shows and compares it with the quantity Stockline wants it to show.
  --repair   push the desired quantity again wherever they differ
  --json     print the report as JSON instead of a table
exit status: 0 no drift (or all of it repaired), 1 drift found without --repair, 2 usage,
             3 some SKUs could not be read (see "unchecked")
`;

/** Catalogues at least this large get progress lines on stderr, one per tenth checked. */
const progressRowsMin = 1_000;
const progressSteps = 10;

export interface ReconcileDeps {
  outbox: ReconcileStore;
  connectors: ReadonlyMap<string, ChannelConnector>;
  sync?: { kick(): void };
  clock?: { nowMs(): number };
}

interface Parsed {
  tenant?: string;
  channel?: string;
  repair: boolean;
  json: boolean;
}

function parse(args: string[]): Parsed {
  const { options, positional } = parseArgs(args, { string: ['tenant', 'channel'], boolean: ['repair', 'json'] });
  if (positional.length > 0) throw new UsageError(`unexpected argument ${positional[0]}`);
  const tenant = options.tenant as string | undefined;
  const channel = options.channel as string | undefined;
  if (tenant !== undefined && !new RegExp(tenantIdPattern).test(tenant)) throw new UsageError(`--tenant ${tenant} is not a tenant id`);
  if (channel !== undefined && !new RegExp(namePattern).test(channel)) throw new UsageError(`--channel ${channel} is not a channel id`);
  return { tenant, channel, repair: options.repair === true, json: options.json === true };
}

function progressReporter(io: Pick<CliIo, 'stderr'>): (progress: ReconcileProgress) => void {
  let reportedStep = 0;
  return ({ checked, total, drift }) => {
    if (total < progressRowsMin) return;
    const step = Math.floor((checked * progressSteps) / total);
    if (step <= reportedStep) return;
    reportedStep = step;
    io.stderr(`checked ${checked} of ${total} SKUs, ${drift} drifted\n`);
  };
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd()).join('\n') + '\n';
}

function formatReport(report: ReconcileReport, repair: boolean): string {
  let text = '';
  if (report.drift.length > 0) {
    const header = ['TENANT', 'CHANNEL', 'SKU', 'DESIRED', 'SHOWN', 'STATE'];
    const rows = report.drift.map((drift) => [
      drift.tenant, drift.channel, drift.sku, String(drift.desired), drift.shown === null ? '-' : String(drift.shown),
      repair ? 'repairing' : drift.pending ? 'push pending' : 'drift',
    ]);
    text += table([header, ...rows]);
  }
  for (const failure of report.unchecked) {
    text += `unchecked: ${failure.skus} SKUs of ${failure.tenant} on ${failure.channel}: ${failure.reason}\n`;
  }
  return `${text}checked ${report.checked} SKUs, ${report.drift.length} drifted, ${report.repaired} repaired\n`;
}

function exitCodeOf(report: ReconcileReport, repair: boolean): number {
  if (report.drift.length > 0 && !repair) return 1;
  return report.unchecked.length > 0 ? 3 : 0;
}

export async function reconcileCommand(args: string[], io: Pick<CliIo, 'stdout' | 'stderr'>, deps: ReconcileDeps): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parse(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`stockline reconcile: ${error.message}\n${reconcileUsage}`);
    return 2;
  }
  const report = await reconcile({
    outbox: deps.outbox, connectors: deps.connectors, tenant: parsed.tenant, channel: parsed.channel,
    repair: parsed.repair, sync: deps.sync, clock: deps.clock, onProgress: progressReporter(io),
  });
  io.stdout(parsed.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report, parsed.repair));
  return exitCodeOf(report, parsed.repair);
}
