// The real ledger in memory behind a CommandBus, and an offset store in memory: what a change source writes to in tests.

import type { CommandBus, CommandInput, SourceOffsets, Submitted } from '../../src/app/ports.js';
import type { Command, LedgerState } from '../../src/core/index.js';
import { execute, initialState } from '../../src/core/index.js';

export interface LedgerBusOptions {
  /** Stamped on every command, for results that are the same on every run; without it, the command's own time or now. */
  timeMs?: number;
}

export class LedgerBus implements CommandBus {
  readonly state: LedgerState = initialState();
  /** Commands refused as older than what the ledger already applied from their source. */
  stale = 0;
  private counter = 0;

  constructor(private readonly options: LedgerBusOptions = {}) {}

  async submit(command: CommandInput): Promise<Submitted> {
    return (await this.submitMany([command]))[0] as Submitted;
  }

  async submitMany(commands: CommandInput[]): Promise<Submitted[]> {
    return commands.map((input) => {
      this.counter += 1;
      const timeMs = this.options.timeMs ?? input.timeMs ?? Date.now();
      const { outcome } = execute(this.state, { ...input, id: `cmd-${this.counter}`, timeMs } as Command);
      if (outcome.rejection?.code === 'STALE_SEQUENCE') this.stale += 1;
      return { outcome };
    });
  }

  onHand(sku: string, location = 'main', tenant = 'acme'): number | undefined {
    return this.state.tenants.get(tenant)?.skus.get(sku)?.locations.get(location)?.onHand;
  }

  deleted(sku: string, tenant = 'acme'): boolean | undefined {
    return this.state.tenants.get(tenant)?.skus.get(sku)?.deleted;
  }
}

export class MemoryOffsets implements SourceOffsets {
  readonly values = new Map<string, string>();
  get(source: string): string | undefined { return this.values.get(source); }
  set(source: string, value: string): void { this.values.set(source, value); }
}
