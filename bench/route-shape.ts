// Where the Fastify floor's cost over the bare counter goes: the steps of bench/servers/route-ladder.ts, from
// the bare counter to a route shaped like Stockline's reservation route that does no work, each loaded at
// 128 connections with Stockline's reservation body, in turns, for several rounds. Beside the rate, the CPU
// the server's main thread spent a request (from /proc): the floor of what Stockline's own route can cost.
// Run: npx tsx bench/route-shape.ts [--duration 6] [--rounds 2]

import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import { flag } from './flags.js';

const durationSeconds = flag('--duration', 6);
const rounds = flag('--rounds', 2);
const steps = ['bare counter', 'tenant in the path', 'body schema', 'path schema', 'headers schema', 'response schema and body', 'request id and key hook', 'new id and Location (the floor)'];
const headers = { authorization: 'Bearer bench-admin-key-0123456789abcdef', 'content-type': 'application/json' };
const body = JSON.stringify({ channel: 'storefront', lines: [{ sku: 'HOT-1', quantity: 1 }], ttlSeconds: 900 });
const ticksPerSecond = 100;

function mainThreadCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / ticksPerSecond;
}

async function measure(step: number): Promise<{ requestsPerSecond: number; mainThreadUsPerRequest: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/servers/route-ladder.ts'], { env: { ...process.env, STEP: String(step) }, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => { if (line.startsWith('http')) resolve(line.trim()); });
      child.once('exit', (code) => reject(new Error(`step ${step} exited with ${code}`)));
    });
    const target = `${url}${step >= 1 ? '/v1/tenants/bench/reservations' : '/reserve'}`;
    await autocannon({ url: target, connections: 32, duration: 2, method: 'POST', headers, body });
    const before = mainThreadCpuUs(child.pid as number);
    const result = await autocannon({ url: target, connections: 128, duration: durationSeconds, method: 'POST', headers, body });
    const spent = mainThreadCpuUs(child.pid as number) - before;
    if (result.non2xx > 0 || result.errors > 0) throw new Error(`step ${step}: ${result.non2xx} answers not 2xx, ${result.errors} errors`);
    return { requestsPerSecond: Math.round(result.requests.average), mainThreadUsPerRequest: Math.round((10 * spent) / result.requests.total) / 10 };
  } finally {
    child.kill('SIGTERM');
  }
}

const measured: Array<Array<{ requestsPerSecond: number; mainThreadUsPerRequest: number }>> = steps.map(() => []);
for (let round = 1; round <= rounds; round += 1) {
  for (let step = 0; step < steps.length; step += 1) {
    const run = await measure(step);
    (measured[step] as typeof run[]).push(run);
    console.error(`round ${round}, step ${step} (${steps[step]}): ${run.requestsPerSecond}/s, main thread ${run.mainThreadUsPerRequest} µs a request`);
  }
}
const results = { durationSeconds, rounds, node: process.version, date: new Date().toISOString(), steps: steps.map((name, step) => ({ step, name, runs: measured[step] })) };
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/route-shape.json', `${JSON.stringify(results, null, 2)}\n`);
console.log(JSON.stringify(results, null, 2));
