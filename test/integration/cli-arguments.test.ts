// How every `stockline` command reads its arguments, in process through the dispatcher: --help and -h print the
// usage, an option without its value and a stray argument are refused (exit 2), and nothing is opened or created
// before the arguments are checked, neither in the folder given nor in ./data.

import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/index.js';
import { ingestUsage } from '../../src/cli/ingest.js';

const repository = process.cwd();
const eventsFile = join(repository, 'test/fixtures/events/valid.ndjson');
let root: string;
let cwd: string;

beforeAll(() => { root = mkdtempSync(join(tmpdir(), 'stockline-cli-arguments-')); });
afterAll(() => { rmSync(root, { recursive: true, force: true }); });

beforeEach(() => {
  // Each test in its own empty working folder, so a fall-back to ./data shows; no configuration from the shell.
  cwd = mkdtempSync(join(root, 'cwd-'));
  process.chdir(cwd);
  vi.stubEnv('STOCKLINE_DATA_DIR', undefined);
  vi.stubEnv('STOCKLINE_CONFIG', undefined);
});

afterEach(() => {
  process.chdir(repository);
  vi.unstubAllEnvs();
});

async function stockline(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const stdin = new PassThrough();
  stdin.end();
  const code = await main(argv, { stdout: (text) => { stdout += text; }, stderr: (text) => { stderr += text; }, stdin });
  return { code, stdout, stderr };
}

/** A configuration with one Debezium source, as the reviewer's, and one change of stock for it. */
function debeziumInput(): { config: string; changes: string } {
  const config = join(cwd, 'dbz.yaml');
  writeFileSync(config, 'sources:\n  - type: debezium\n    name: shop\n    columns: { tenantConstant: demo, sku: sku, locationConstant: wh-berlin, onHand: qty }\n');
  const changes = join(cwd, 'dbz.ndjson');
  writeFileSync(changes, '{"before":null,"after":{"sku":"TEE-BLK-M","qty":50},"source":{"lsn":1000,"ts_ms":1700000000000,"table":"stock","schema":"public"},"op":"u","ts_ms":1700000000000}\n');
  return { config, changes };
}

const commands = ['serve', 'validate', 'replay', 'keys', 'ingest', 'reconcile', 'topics', 'demo'];

describe('--help and -h', () => {
  it.each(commands.flatMap((command) => [[command, '--help'], [command, '-h']]))('%s %s prints its usage on stdout and exits 0', async (command, flag) => {
    const result = await stockline(command, flag);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(new RegExp(`^usage: stockline ${command}`));
    expect(result.code).toBe(0);
  });

  it('wins over other arguments, and opens nothing', async () => {
    for (const argv of [['ingest', 'debezium', 'changes.ndjson', '--help'], ['keys', 'create', '--tenant', 'acme', '-h'], ['reconcile', '--repair', '--help']]) {
      const result = await stockline(...argv);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^usage: /);
    }
    expect(readdirSync(cwd)).toEqual([]);
  });

  it('stockline -h is the list of commands', async () => {
    const result = await stockline('-h');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^usage: stockline <command>/);
  });
});

describe('an option without its value', () => {
  it('makes ingest refuse to run, instead of applying the changes to ./data', async () => {
    const { config, changes } = debeziumInput();
    const result = await stockline('ingest', 'debezium', changes, '--config', config, '--data-dir');
    expect(result.stderr.split('\n')[0]).toBe('stockline ingest: --data-dir needs a value');
    expect(result.stdout).toBe('');
    expect(result.code).toBe(2);
    expect(existsSync(join(cwd, 'data'))).toBe(false);
  });

  it('makes reconcile refuse to run, instead of checking ./data', async () => {
    const result = await stockline('reconcile', '--data-dir');
    expect(result.stderr.split('\n')[0]).toBe('stockline reconcile: --data-dir needs a value');
    expect(result.stdout).toBe('');
    expect(result.code).toBe(2);
  });

  it.each([
    ['ingest', 'debezium', 'x.ndjson', '--config'],
    ['ingest', 'debezium', 'x.ndjson', '--data-dir', '--config', 'dbz.yaml'],
    ['ingest', 'debezium', 'x.ndjson', '--data-dir='],
    ['reconcile', '--config'],
    ['reconcile', '--data-dir', '--json'],
    ['reconcile', '--tenant'],
    ['keys', 'list', '--data-dir'],
    ['keys', 'create', '--tenant', 'acme', '--scopes', 'read', '--data-dir'],
    ['keys', 'create', '--tenant', '--scopes', 'read'],
    ['serve', '--data-dir'],
    ['serve', '--port', '--demo'],
    ['replay', '-', '--expect'],
    ['topics', 'scaffold', '--config'],
    ['demo', '--seed'],
  ])('is a usage error, exit 2, with nothing created: %s', async (...argv) => {
    const result = await stockline(...argv);
    const option = /^stockline \w+: (--[a-z-]+) needs a value$/.exec(result.stderr.split('\n')[0] as string);
    expect(option, result.stderr).not.toBeNull();
    expect(argv.some((arg) => arg.startsWith(option?.[1] as string))).toBe(true);
    expect(result.code).toBe(2);
    expect(readdirSync(cwd)).toEqual([]);
  });
});

describe('an option given twice', () => {
  it.each([
    [['keys', 'create', '--tenant', 'acme', '--tenant', 'other', '--scopes', 'read'], '--tenant is given twice (acme, other): give it once'],
    [['serve', '--port', '18320', '--port=18321'], '--port is given twice (18320, 18321): give it once'],
    [['ingest', 'debezium', 'x.ndjson', '--data-dir', 'a', '--data-dir', 'b'], '--data-dir is given twice (a, b): give it once'],
  ])('is refused with exit 2 and nothing created, rather than the last one winning: %j', async (argv, message) => {
    const result = await stockline(...argv);
    expect(result.stderr.split('\n')[0]).toBe(`stockline ${argv[0]}: ${message}`);
    expect(result.code).toBe(2);
    expect(readdirSync(cwd)).toEqual([]);
  });
});

describe('a stray argument', () => {
  it.each([
    [['keys', 'list', 'extra']],
    [['keys', 'create', '--tenant', 'acme', '--scopes', 'read', 'extra']],
    [['keys', 'revoke', '0000000000000000', 'extra']],
    [['reconcile', 'extra']],
    [['replay', eventsFile, 'extra']],
    [['validate', eventsFile, 'extra']],
    [['demo', 'extra']],
    [['ingest', 'debezium', 'x.ndjson', 'extra']],
    [['topics', 'scaffold', 'extra', '--config', 'x.yaml']],
  ])('is refused with exit 2 and nothing created: %j', async (argv) => {
    const result = await stockline(...argv);
    expect(result.stderr).toMatch(/^stockline \w+: (unknown argument extra|expected: ingest debezium <file\|->)\n/);
    expect(result.code).toBe(2);
    expect(readdirSync(cwd)).toEqual([]);
  });

  it.each([
    [['keys', 'list', '-p', '1']],
    [['reconcile', '-x']],
    [['replay', '-v', eventsFile]],
    [['validate', '-q', eventsFile]],
    [['validate', '--bogus', eventsFile]],
    [['keys', 'create', '--admin=yes', '--scopes', 'admin']],
  ])('that looks like an option is an unknown option, exit 2: %j', async (argv) => {
    const result = await stockline(...argv);
    expect(result.stderr).toMatch(/^stockline \w+: (unknown option -{1,2}[a-z]+|--admin takes no value)\n/);
    expect(result.code).toBe(2);
    expect(readdirSync(cwd)).toEqual([]);
  });
});

describe('ingest', () => {
  it('checks its input before it opens the ledger', async () => {
    const { config } = debeziumInput();
    const result = await stockline('ingest', 'debezium', join(cwd, 'missing.ndjson'), '--config', config);
    expect(result.stderr).toMatch(/^stockline ingest: cannot read .*missing\.ndjson: ENOENT/);
    expect(result.code).toBe(2);
    expect(existsSync(join(cwd, 'data'))).toBe(false);
  });

  it('applies the changes to the --data-dir it is given', async () => {
    const { config, changes } = debeziumInput();
    const result = await stockline('ingest', 'debezium', changes, '--config', config, '--data-dir', join(cwd, 'ledger'), '--new-ledger');
    expect(result.stdout).toBe(`ingested 1 events from ${changes}: 1 applied, 0 stale (duplicates), 0 dead letters, 0 skipped\n`);
    expect(result.code).toBe(0);
    expect(existsSync(join(cwd, 'ledger', 'stockline.db'))).toBe(true);
    expect(existsSync(join(cwd, 'data'))).toBe(false);
    // The ledger is there now: a second run needs no flag (and its change is a duplicate).
    const again = await stockline('ingest', 'debezium', changes, '--config', config, '--data-dir', join(cwd, 'ledger'));
    expect(again.stdout).toBe(`ingested 1 events from ${changes}: 0 applied, 1 stale (duplicates), 0 dead letters, 0 skipped\n`);
  });

  it('refuses a data folder without a ledger, naming it, and makes nothing there', async () => {
    // A mistyped folder, or a relative dataDir run from another folder, would take the changes where no server reads them.
    const { config, changes } = debeziumInput();
    const result = await stockline('ingest', 'debezium', changes, '--config', config, '--data-dir', 'typo');
    expect(result.stderr).toBe(`stockline ingest: no stockline.db in ${join(cwd, 'typo')}: give the data folder of the server (--data-dir, or dataDir of the `
      + 'configuration; a relative one is taken from the current folder), or pass --new-ledger to make a ledger there\n');
    expect(result.code).toBe(2);
    expect(readdirSync(cwd).sort()).toEqual(['dbz.ndjson', 'dbz.yaml']);
  });
});

describe('an empty STOCKLINE_CONFIG or HOST', () => {
  it.each([
    [['keys', 'list']],
    [['reconcile']],
    [['serve', '--port', '0']],
  ])('STOCKLINE_CONFIG="" is refused with one line that names it, exit 2: %j', async (argv) => {
    vi.stubEnv('STOCKLINE_CONFIG', '');
    const result = await stockline(...argv);
    expect(result.stderr).toMatch(/^stockline \w+: the configuration file is empty \(--config or STOCKLINE_CONFIG given as ""\): name a file, or unset STOCKLINE_CONFIG\n$/);
    expect(result.code).toBe(2);
    expect(existsSync(join(cwd, 'data'))).toBe(false);
  });

  it('HOST="" is refused: the server would listen on every interface', async () => {
    vi.stubEnv('HOST', '');
    const result = await stockline('serve', '--port', '0', '--data-dir', join(cwd, 'ledger'));
    expect(result.stderr).toBe('stockline serve: HOST is empty: name an address (0.0.0.0 for every interface), or unset HOST\n');
    expect(result.code).toBe(2);
    expect(existsSync(join(cwd, 'ledger'))).toBe(false);
  });
});

describe('an empty STOCKLINE_DATA_DIR', () => {
  it.each([
    [['keys', 'create', '--tenant', 'demo', '--scopes', 'read']],
    [['keys', 'list']],
    [['reconcile']],
    [['ingest', 'debezium', 'CHANGES', '--config', 'CONFIG']],
  ])('is refused with one line, exit 2, and nothing made in ./data: %j', async (argv) => {
    const { config, changes } = debeziumInput();
    vi.stubEnv('STOCKLINE_DATA_DIR', '');
    const result = await stockline(...argv.map((arg) => (arg === 'CHANGES' ? changes : arg === 'CONFIG' ? config : arg)));
    expect(result.stderr).toMatch(/^stockline \w+: .*the data folder is empty \(--data-dir or STOCKLINE_DATA_DIR given as ""\)/);
    expect(result.code).toBe(2);
    expect(existsSync(join(cwd, 'data'))).toBe(false);
  });
});

describe('a data folder or database that cannot be used', () => {
  // Named in one line with the cause, exit 2, as serve does: never a stack trace, and for ingest never the exit 1
  // that means "some changes went to dead letters".
  it.each([
    ['keys create', ['keys', 'create', '--tenant', 'acme', '--scopes', 'read']],
    ['ingest', ['ingest', 'debezium', 'CHANGES', '--config', 'CONFIG', '--new-ledger']],
  ])('%s on a file given as the data folder', async (_name, argv) => {
    const { config, changes } = debeziumInput();
    const file = join(cwd, 'afile');
    writeFileSync(file, '');
    const result = await stockline(...argv.map((arg) => (arg === 'CHANGES' ? changes : arg === 'CONFIG' ? config : arg)), '--data-dir', file);
    expect(result.stderr).toBe(`stockline ${argv[0]}: the data folder ${file} cannot be used: it is a file, not a folder (EEXIST)\n`);
    expect(result.code).toBe(2);
  });

  it.each([
    ['keys create', ['keys', 'create', '--tenant', 'acme', '--scopes', 'read']],
    ['ingest', ['ingest', 'debezium', 'CHANGES', '--config', 'CONFIG']],
    ['reconcile', ['reconcile', '--config', 'CONFIG']],
  ])('%s on a database file that is not SQLite', async (_name, argv) => {
    const { config, changes } = debeziumInput();
    const dir = join(cwd, 'ledger');
    mkdirSync(dir);
    writeFileSync(join(dir, 'stockline.db'), 'not a database, but long enough to be read as one '.repeat(100));
    const result = await stockline(...argv.map((arg) => (arg === 'CHANGES' ? changes : arg === 'CONFIG' ? config : arg)), '--data-dir', dir);
    expect(result.stderr).toBe(`stockline ${argv[0]}: the database ${join(dir, 'stockline.db')} cannot be used: it is not a SQLite database (SQLITE_NOTADB); move it away, or restore it from a backup\n`);
    expect(result.code).toBe(2);
  });
});

describe('ingest reads the source\'s file: when it is given none', () => {
  it('applies the configured file, and names what is missing when there is neither', async () => {
    const { config, changes } = debeziumInput();
    const ledger = join(cwd, 'ledger');
    const result = await stockline('ingest', 'debezium', '--config', config, '--data-dir', ledger, '--new-ledger');
    expect(result.stderr).toBe(`stockline ingest: name the file of events: ingest debezium <file|->, or file: in the configuration of source shop\n${ingestUsage}`);
    expect(result.code).toBe(2);
    writeFileSync(config, `${readFileSync(config, 'utf8')}    file: ${changes}\n`);
    const configured = await stockline('ingest', 'debezium', '--config', config, '--data-dir', ledger, '--new-ledger');
    expect(configured.stdout).toBe(`ingested 1 events from ${changes}: 1 applied, 0 stale (duplicates), 0 dead letters, 0 skipped\n`);
    expect(configured.code).toBe(0);
  });
});
