// Runs once around the suite: the artifacts folder, and the development Kafka broker (started here once, so
// test files do not race to fetch and start it; stopped at the end if this run started it).

import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';

const script = 'scripts/kafka-dev.sh';
const upTimeoutMs = 600_000;

function kafkaDev(action: string): { status: number | null; output: string } {
  const result = spawnSync('bash', [script, action], { encoding: 'utf8', timeout: upTimeoutMs });
  return { status: result.status, output: `${result.stdout ?? ''}${result.stderr ?? ''}` };
}

export default function setup(): () => void {
  mkdirSync('test-artifacts', { recursive: true });
  const wasRunning = kafkaDev('status').status === 0;
  if (!wasRunning) {
    const up = kafkaDev('up');
    if (up.status !== 0) throw new Error(`could not start the test Kafka broker (${script} up):\n${up.output.slice(-4000)}`);
  }
  return () => {
    if (!wasRunning) kafkaDev('down');
  };
}
