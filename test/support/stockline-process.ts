// Runs `stockline serve` as a child process, as a user runs it, for crash and end-to-end tests.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export const processAdminKey = 'process-admin-key-0123456789abcdef';

export interface StocklineProcess {
  url: string;
  child: ChildProcess;
  output: string[];
  /** SIGTERM and wait (graceful), or SIGKILL (a crash). */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<number | null>;
}

export async function startStockline(args: string[], env: Record<string, string> = {}, startTimeoutMs = 30_000): Promise<StocklineProcess> {
  const child = spawn(process.execPath, ['bin/stockline.js', 'serve', '--host', '127.0.0.1', '--port', '0', ...args], {
    env: { ...process.env, STOCKLINE_ADMIN_KEY: processAdminKey, STOCKLINE_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => output.push(line));
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`stockline did not start within ${startTimeoutMs} ms:\n${output.join('\n')}`)), startTimeoutMs);
    lines.on('line', (line) => {
      output.push(line);
      const match = /serving on (http:\/\/\S+)/.exec(line);
      if (match !== null) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`stockline exited with ${code} before serving:\n${output.join('\n')}`));
    });
  });
  const exited = new Promise<number | null>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
  return {
    url, child, output,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export function adminHeaders(): Record<string, string> {
  return { authorization: `Bearer ${processAdminKey}`, 'content-type': 'application/json' };
}
