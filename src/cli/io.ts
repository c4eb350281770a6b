// The streams a CLI command writes to, passed in so commands are testable without a process.

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  stdin: NodeJS.ReadableStream;
}

export const processIo: CliIo = {
  stdout: (text) => { process.stdout.write(text); },
  stderr: (text) => { process.stderr.write(text); },
  stdin: process.stdin,
};

export class UsageError extends Error {
  readonly code = 'USAGE';
}

/** `--help` or `-h` anywhere: every command then prints its usage instead of running (see main in index.ts). */
export function asksForHelp(args: readonly string[]): boolean {
  return args.some((arg) => arg === '--help' || arg === '-h');
}

/**
 * Splits `--flag value` and `--flag` options from positional arguments. An unknown option, an option with no
 * value (last, empty, or followed by another `--option`) and a flag given a value are `UsageError`s, so a typo
 * never falls back to a default; `-` alone is a positional (stdin).
 */
export function parseArgs(args: string[], flags: { boolean?: string[]; string?: string[] }): { options: Record<string, string | boolean>; positional: string[] } {
  const options: Record<string, string | boolean> = {};
  const positional: string[] = [];
  for (let index = 0; index < args.length; index += 1) {
    const arg = args[index] as string;
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    if (!arg.startsWith('--')) throw new UsageError(`unknown option ${arg}`);
    const equals = arg.indexOf('=');
    const name = equals < 0 ? arg.slice(2) : arg.slice(2, equals);
    const inline = equals < 0 ? undefined : arg.slice(equals + 1);
    if (flags.boolean?.includes(name)) {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`);
      options[name] = true;
    } else if (flags.string?.includes(name)) {
      const value = inline ?? args[index + 1];
      if (value === undefined || value === '' || (inline === undefined && value.startsWith('--'))) throw new UsageError(`--${name} needs a value`);
      if (inline === undefined) index += 1;
      // The last of two would win silently: a key made for the wrong tenant, a server on the wrong folder.
      if (name in options) throw new UsageError(`--${name} is given twice (${String(options[name])}, ${value}): give it once`);
      options[name] = value;
    } else {
      throw new UsageError(`unknown option --${name}`);
    }
  }
  return { options, positional };
}

/** Refuses positional arguments beyond the first `allowed`. */
export function refuseExtraArguments(positional: readonly string[], allowed = 0): void {
  const extra = positional[allowed];
  if (extra !== undefined) throw new UsageError(`unknown argument ${extra}`);
}

/**
 * A decimal integer in `min..max` written as digits only, else undefined: `Number` would take '' as 0, '0x4789' as
 * 18313 and '1e4' as 10000.
 */
export function decimalInteger(text: string, min: number, max: number): number | undefined {
  if (!/^\d{1,16}$/.test(text)) return undefined;
  const value = Number(text);
  return value >= min && value <= max ? value : undefined;
}

/** An option's value when it was given one (see `parseArgs`). */
export function stringOption(value: string | boolean | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
