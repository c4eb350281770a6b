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

/** Splits `--flag value` and `--flag` options from positional arguments. */
export function parseArgs(args: string[], flags: { boolean?: string[]; string?: string[] }): { options: Record<string, string | boolean>; positional: string[] } {
  const options: Record<string, string | boolean> = {};
  const positional: string[] = [];
  for (let index = 0; index < args.length; index += 1) {
    const arg = args[index] as string;
    if (!arg.startsWith('--') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const [name, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
    if (flags.boolean?.includes(name)) {
      options[name] = true;
    } else if (flags.string?.includes(name)) {
      const value = inline ?? args[index + 1];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      if (inline === undefined) index += 1;
      options[name] = value;
    } else {
      throw new UsageError(`unknown option --${name}`);
    }
  }
  return { options, positional };
}
