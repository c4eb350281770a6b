// `stockline reconcile [--tenant T] [--channel C] [--repair] [--json]`: compares channels with the desired state.

import { namePattern, tenantIdPattern } from '../core/index.js';
import type { ChannelConnector } from '../adapters/channels/connector.js';
import { reconcile } from '../app/reconcile.js';
import type { ReconcileProgress, ReconcileReport, ReconcileStore } from '../app/reconcile.js';
import { parseArgs, refuseExtraArguments, stringOption, UsageError } from './io.js';
import type { CliIo } from './io.js';

export const reconcileUsage = `usage: stockline reconcile [--tenant T] [--channel C] [--repair] [--json] [--data-dir DIR] [--config FILE]

Reads what each channel shows and compares it with the quantity Stockline wants it to show.
  --tenant   only this tenant's SKUs; it must have some on a channel
  --channel  only this channel, one of the channels: of the configuration
  --repair   push the desired quantity again wherever they differ
  --json     print the report as JSON instead of a table
the data folder: --data-dir, else $STOCKLINE_DATA_DIR, else dataDir of the configuration (--config, else
$STOCKLINE_CONFIG), else ./data; it must hold the file of a node that has run
exit status: 0 no drift (or all of it repaired), 1 drift found without --repair, 2 usage, a channel not
             in the configuration, or a tenant with no SKUs to check, 3 some SKUs could not be read (see "unchecked")
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

/** The checked arguments; `options` keeps --data-dir and --config for opening the data folder. */
export interface ReconcileRequest {
  tenant?: string;
  channel?: string;
  repair: boolean;
  json: boolean;
  options: Record<string, string | boolean>;
}

/** Throws `UsageError` on anything but the options of the usage text. */
export function reconcileRequestOf(args: string[]): ReconcileRequest {
  const { options, positional } = parseArgs(args, { string: ['tenant', 'channel', 'data-dir', 'config'], boolean: ['repair', 'json'] });
  refuseExtraArguments(positional);
  const tenant = stringOption(options.tenant);
  const channel = stringOption(options.channel);
  if (tenant !== undefined && !new RegExp(tenantIdPattern).test(tenant)) throw new UsageError(`--tenant ${tenant} is not a tenant id`);
  if (channel !== undefined && !new RegExp(namePattern).test(channel)) throw new UsageError(`--channel ${channel} is not a channel id`);
  return { tenant, channel, repair: options.repair === true, json: options.json === true, options };
}

/** Why `channel` cannot be reconciled, or undefined: it must be one of the configured channels. */
export function unknownChannel(channel: string | undefined, configured: readonly string[]): string | undefined {
  if (channel === undefined || configured.includes(channel)) return undefined;
  const names = configured.length === 0 ? 'none are configured (channels: in --config or $STOCKLINE_CONFIG)' : `the configured channels are ${configured.join(', ')}`;
  return `no channel ${channel} in the configuration: ${names}`;
}

/** Why there is nothing to check for the tenant, or undefined: a tenant the outbox holds no SKU of is most often a typo. */
function emptyTenant(request: ReconcileRequest, outbox: ReconcileStore): string | undefined {
  const { tenant, channel } = request;
  if (tenant === undefined || outbox.count({ tenant, channel }) > 0) return undefined;
  return `tenant ${tenant} has no SKUs ${channel === undefined ? 'on any channel' : `on channel ${channel}`}: nothing to check (is the tenant id right?)`;
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

/** The exit status of bad usage, with the usage text; rethrows anything else. */
export function usageFailure(io: Pick<CliIo, 'stderr'>, error: unknown): number {
  if (!(error instanceof UsageError)) throw error;
  io.stderr(`stockline reconcile: ${error.message}\n${reconcileUsage}`);
  return 2;
}

/** Reconciles a checked request; the connectors are those of every configured channel. */
export async function runReconcile(request: ReconcileRequest, io: Pick<CliIo, 'stdout' | 'stderr'>, deps: ReconcileDeps): Promise<number> {
  const refused = unknownChannel(request.channel, [...deps.connectors.keys()]) ?? emptyTenant(request, deps.outbox);
  if (refused !== undefined) {
    io.stderr(`stockline reconcile: ${refused}\n`);
    return 2;
  }
  const report = await reconcile({
    outbox: deps.outbox, connectors: deps.connectors, tenant: request.tenant, channel: request.channel,
    repair: request.repair, sync: deps.sync, clock: deps.clock, onProgress: progressReporter(io),
  });
  io.stdout(request.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report, request.repair));
  return exitCodeOf(report, request.repair);
}

export async function reconcileCommand(args: string[], io: Pick<CliIo, 'stdout' | 'stderr'>, deps: ReconcileDeps): Promise<number> {
  let request: ReconcileRequest;
  try {
    request = reconcileRequestOf(args);
  } catch (error) {
    return usageFailure(io, error);
  }
  return runReconcile(request, io, deps);
}
