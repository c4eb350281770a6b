// `stockline topics scaffold [--config FILE] [--dry-run] [--json]`: creates or checks the Kafka topics and ACLs.
// Exit 0: everything is as configured (now). 1: a topic was refused, or the brokers failed. 2: bad usage or configuration.

import { brokerErrorText, isUnavailable } from '../adapters/kafka/admin.js';
import { KafkaConfigError, loadKafkaConfig } from '../adapters/kafka/config.js';
import { formatScaffoldReport, scaffoldTopics } from '../adapters/kafka/scaffold.js';
import type { CliIo } from './io.js';
import { parseArgs, UsageError } from './io.js';

export const topicsUsage = `usage: stockline topics scaffold [--config FILE] [--dry-run] [--json]

  Creates the Kafka engine's topics (<prefix>.commands, .events, .changelog, .dead-letter,
  .channel-state) and its ACLs, from the kafka: section of FILE (default: $STOCKLINE_CONFIG).
  Re-running changes nothing; drifted settings are set back and reported; missing partitions are
  added. More partitions than configured, or another replication factor, are refused (exit 1).

  --dry-run   report what would change, change nothing
  --json      print the report as JSON
exit status: 0 as configured, 1 a topic refused or the brokers failed, 2 bad usage or an invalid configuration
`;

export async function topicsCommand(args: string[], io: Pick<CliIo, 'stdout' | 'stderr'>): Promise<number> {
  let options: Record<string, string | boolean>;
  let positional: string[];
  try {
    ({ options, positional } = parseArgs(args, { boolean: ['dry-run', 'json', 'help'], string: ['config'] }));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`stockline topics: ${error.message}\n${topicsUsage}`);
    return 2;
  }
  if (options.help === true) {
    io.stdout(topicsUsage);
    return 0;
  }
  if (positional.length !== 1 || positional[0] !== 'scaffold') {
    const refused = positional[0] === 'scaffold' ? `unknown argument ${positional[1]}` : positional[0] === undefined ? 'expected: topics scaffold' : `unknown action ${positional[0]}`;
    io.stderr(`stockline topics: ${refused}\n${topicsUsage}`);
    return 2;
  }
  const file = typeof options.config === 'string' ? options.config : process.env.STOCKLINE_CONFIG;
  if (file === undefined || file === '') {
    io.stderr(`stockline topics: --config FILE is required (or set STOCKLINE_CONFIG)\n${topicsUsage}`);
    return 2;
  }
  return scaffold(file, options['dry-run'] === true, options.json === true, io);
}

async function scaffold(file: string, dryRun: boolean, json: boolean, io: Pick<CliIo, 'stdout' | 'stderr'>): Promise<number> {
  try {
    const config = loadKafkaConfig(file);
    const report = await scaffoldTopics(config, { dryRun });
    if (json) io.stdout(`${JSON.stringify(report, null, 2)}\n`);
    else io.stdout(formatScaffoldReport(report).map((line) => `${line}\n`).join(''));
    if (!report.ok) io.stderr('stockline topics: some topics were refused; nothing was changed on them (see above)\n');
    return report.ok ? 0 : 1;
  } catch (error) {
    if (error instanceof KafkaConfigError) {
      io.stderr(`stockline topics: invalid configuration: ${error.message}\n`);
      return 2;
    }
    if (isUnavailable(error)) {
      io.stderr(`stockline topics: Kafka is unavailable: ${brokerErrorText(error)}\n`);
      return 1;
    }
    io.stderr(`stockline topics: failed: ${brokerErrorText(error)}\n`);
    return 1;
  }
}
