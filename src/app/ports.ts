// The ports the application talks to; adapters implement them, main.ts wires them.

import type { Command, Outcome } from '../core/index.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A command as an adapter sends it: the engine stamps its id and time. */
export type CommandInput = DistributiveOmit<Command, 'id' | 'timeMs'> & { timeMs?: number };

export interface Submitted {
  outcome: Outcome;
  /** Position of the command's last event in the log, when it wrote any. */
  position?: number;
}

/**
 * Where every input goes. `submit` resolves only once the outcome is durable. A submitted command belongs to the
 * bus, which may stamp its id and time on it; one refused because it could not be made durable comes back as it
 * was sent, so it may be submitted again. Never submit one object twice at once.
 */
export interface CommandBus {
  submit(command: CommandInput): Promise<Submitted>;
  /** Submits in order; resolves once all are durable. The outcomes are in the same order. */
  submitMany(commands: CommandInput[]): Promise<Submitted[]>;
}

/** A record that could not become a command, kept with the reason so an operator can look at it. */
export interface DeadLetter {
  source: string;
  reason: string;
  payload: unknown;
  timeMs: number;
}

export interface DeadLetterSink {
  deadLetter(letter: DeadLetter): void;
}

/** Small durable key-value store for adapters' own progress (e.g. a CDC source's snapshot state). */
export interface SourceOffsets {
  get(source: string): string | undefined;
  set(source: string, value: string): void;
}
