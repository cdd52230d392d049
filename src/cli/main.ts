/**
 * The CLI's one entry: builds the commander program, runs a command, and maps every
 * outcome to an exit code (docs/architecture.md, Contracts). Only this module touches process.exitCode and
 * signals. Command modules load lazily so `reaper --help` stays fast.
 */
import { Argument, Command, CommanderError, Option } from 'commander';
import { ExitCode, formatManifestIssue, ManifestError, ReaperError, redact, UsageError } from '../errors.js';
import { killProcessGroups } from '../util/process-groups.js';
import { versionReport } from '../version.js';
import type { CliIO } from './io.js';

export type { CliIO } from './io.js';

/** A command: its positional arguments, and its options as the command declares them (flags.ts). */
type Action<O> = (io: CliIO, args: unknown[], options: O) => Promise<number | void>;

/**
 * Wrap a lazily imported command so commander sees a plain action. commander types parsed
 * options loosely; each command names the shape the options declared here give it (its `…Flags`).
 */
function lazy<O>(io: CliIO, load: () => Promise<Action<O>>) {
  return async (...raw: unknown[]) => {
    const command = raw[raw.length - 1] as Command;
    const options = command.optsWithGlobals<O & object>();
    const args = raw.slice(0, -2);
    const code = await (await load())(io, args, options);
    if (typeof code === 'number') io.exitCode = Math.max(io.exitCode ?? 0, code);
  };
}

const outputOption = () => new Option('-o, --output <format>', 'table or json (default: table on a TTY, json otherwise)').choices(['table', 'json']);
const configOption = () => new Option('-c, --config <file>', 'the manifest (default: $REAPER_CONFIG, then ./reaper.yaml)');
const stateOption = () => new Option('--state <url>', 'state store URL (first of: --state, then $REAPER_STATE, then the manifest\'s state:, then sqlite:.reaper/state.db)');

const collect = (value: string, previous: string[]) => [...previous, value];
/** The filters of audit and reap: they narrow, never widen, what a run looks at and acts on. */
const withFilters = (command: Command) =>
  command
    .addOption(new Option('--exclude-resource <name...>', 'leave these resource types out'))
    .addOption(new Option('--older-than <duration>', 'only resources at least this old, e.g. 7d'))
    .addOption(new Option('--owner <key>', 'only resources of this owner key (repeatable)').argParser(collect).default([]));
/** --shard and --job of audit and reap (docs/scale-out.md). */
const withShard = (command: Command) =>
  command
    .addOption(new Option('--shard <i/N>', 'only shard i of N (from 0) of every resource type (default: $JOB_COMPLETION_INDEX of $REAPER_SHARDS when both are set)'))
    .addOption(new Option('--job <id>', 'the job this run is a shard of, new for each execution: in the report and the metrics, and for a reap the shards of one job share its maxDeletesPerRun (default: $REAPER_JOB)'));
const quietOption = () => new Option('-q, --quiet', 'print the summary line only (one JSON object with --output json)');
const logFormatOption = () =>
  new Option('--log-format <format>', 'text, or json: one JSON event per line on stderr (run started, each type, each gate, run finished; default: $REAPER_LOG_FORMAT, then text)').choices(['text', 'json']);

export function buildProgram(io: CliIO): Command {
  const program = new Command('reaper')
    .description('Audit distributed systems for orphaned resources and reap them safely.')
    .version(versionReport(io.version()), '-V, --version', 'print reaper\'s version, the Node.js version and the state-store schema version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });

  program
    .command('demo')
    .description('build a local sandbox (files + SQLite leases), audit it and show a dry-run reap; no services needed')
    .argument('[dir]', 'where to build it', 'reaper-demo')
    .addOption(outputOption())
    .action(lazy(io, async () => (await import('./commands/demo.js')).demoCommand));

  program
    .command('init')
    .description('write a manifest to start from (default ./reaper.yaml, - to print it); never overwrites one')
    .argument('[file]', 'the file to write', 'reaper.yaml')
    .action(lazy(io, async () => (await import('./commands/init.js')).initCommand));

  program
    .command('validate')
    .description('check a manifest, then, read-only, the state store, every liveness source and every resource type; changes nothing')
    .addOption(configOption())
    .option('--offline', 'check the manifest only; contact nothing')
    .addOption(outputOption())
    .action(lazy(io, async () => (await import('./commands/validate.js')).validateCommand));

  withShard(withFilters(program.command('audit')))
    .description('scan, classify and print leak telemetry; read-only')
    .option('--junit <file>', 'JUnit XML: one test case per resource type, failing when it breaks a gate (with --baseline/--since, naming the new findings)')
    .option('--summary <file>', 'append a Markdown summary (e.g. $GITHUB_STEP_SUMMARY)')
    .option('--metrics-file <file>', 'Prometheus text for the node-exporter textfile collector (written atomically)')
    .option('--pushgateway <url>', 'push the metrics to a Pushgateway')
    .option('--pushgateway-job <name>', 'Pushgateway job name', 'reaper')
    .option('--html <file>', 'a self-contained HTML report of this audit (as reaper report writes)')
    .addOption(configOption())
    .addOption(outputOption())
    .option('--findings <file>', 'write every non-live finding as NDJSON')
    .option('--resource <name...>', 'only these resource types')
    .option('--max-findings <n>', 'findings kept in the JSON document (all go to --findings)', '1000')
    .option('--fail-on <expr>', 'gate, repeatable: orphaned>0, orphanBytes>1GiB, uploads:expired>=10, renewalFailureRate>5% (exit 1 when one fails)', collect, [])
    .option('--baseline <file>', 'an earlier audit (--output json or --findings file): gates count only findings not in it; reports lead with the new ones')
    .option('--since <runId>', 'show new, resolved and persisting findings against an earlier audit run')
    .addOption(quietOption())
    .addOption(logFormatOption())
    .addOption(stateOption())
    .action(lazy(io, async () => (await import('./commands/audit.js')).auditCommand));

  withShard(withFilters(program.command('reap')))
    .description('tombstone-then-delete orphans; a DRY RUN unless --execute')
    .option('--summary <file>', 'append a Markdown summary (e.g. $GITHUB_STEP_SUMMARY)')
    .option('--metrics-file <file>', 'Prometheus text for the node-exporter textfile collector (written atomically)')
    .option('--pushgateway <url>', 'push the metrics to a Pushgateway')
    .option('--pushgateway-job <name>', 'Pushgateway job name', 'reaper')
    .option('--html <file>', 'a self-contained HTML report of this reap (as reaper report writes)')
    .addOption(configOption())
    .addOption(outputOption())
    .option('--execute', 'act: mark, sweep and delete (default: print the plan only)')
    .option('--plan-out <file>', 'save the plan (NDJSON with a digest)')
    .option('--plan <file>', 'with --execute: apply exactly this saved plan, each item re-verified')
    .option('--sweep-only', 'no scan: sweep the due tombstones from the ledger, each read by id and judged again; nothing new is marked')
    .option('--resource <name...>', 'only these resource types')
    .option('--allow-liveness-drop', 'proceed although the registry-outage breaker tripped (a deliberate first run)')
    .option('--lock-ttl <duration>', 'how long a per-type lock (and the run\'s heartbeat) outlives a crashed run; at least 1s', '2m')
    .addOption(quietOption())
    .addOption(logFormatOption())
    .addOption(stateOption())
    .action(lazy(io, async () => (await import('./commands/reap.js')).reapCommand));

  program
    .command('report')
    .description('one self-contained HTML file (no network): summary, types, orphan ages, owners, trend over runs, pending tombstones, a findings table')
    .argument('[files...]', 'an audit JSON document (audit --output json), a reap JSON report, and/or findings NDJSON (audit --findings); none: the newest audit the state store recorded')
    .option('--out <file>', 'where to write the HTML ("-": stdout)', 'reaper-report.html')
    .option('--run <runId>', 'the audit run of the state store to show (default: the newest)')
    .option('--runs <n>', `runs in the trend (at most 60)`, '30')
    .option('--title <text>', 'the page title')
    .addOption(configOption())
    .addOption(stateOption())
    .action(lazy(io, async () => (await import('./commands/report.js')).reportCommand));

  program
    .command('restore')
    .description('lift tombstones by run, type or id; bring back what the backend kept')
    .addOption(configOption())
    .addOption(outputOption())
    .option('--run <runId>', 'tombstones marked or swept by this run')
    .option('--resource <name>', 'tombstones of this resource type')
    .option('--id <id>', 'the tombstone of this resource id')
    .action(lazy(io, async () => (await import('./commands/restore.js')).restoreCommand));

  program
    .command('explain')
    .description('why one resource is live or not: its owners up to a live key, or where the chain breaks')
    .argument('<type>', 'resource type (a name from the manifest)')
    .argument('<id>', 'resource id (S3 key, primary key, path relative to the directory)')
    .addOption(configOption())
    .addOption(outputOption())
    .action(lazy(io, async () => (await import('./commands/explain.js')).explainCommand));

  program
    .command('conformance')
    .description('check a command or http handler against the resource protocol; deletes nothing unless --destructive')
    .requiredOption('--type <name>', 'the resource type whose handler is checked')
    .option('--destructive', 'also delete the resource --id names (conditionally) and check it is gone')
    .option('--id <id>', 'the resource --destructive deletes')
    .addOption(configOption())
    .addOption(outputOption())
    .action(lazy(io, async () => (await import('./commands/conformance.js')).conformanceCommand));

  program
    .command('split-points')
    .description('shard.splitPoints for an S3 or SQL type: equal-count key ranges, read from the resources now')
    .requiredOption('--type <name>', 'the resource type to split')
    .option('--ranges <count>', 'how many ranges (a multiple of the shard count, say 4 x N)', '16')
    .addOption(configOption())
    .addOption(outputOption())
    .action(lazy(io, async () => (await import('./commands/split-points.js')).splitPointsCommand));

  program
    .command('graph')
    .description('the type-level ownership graph')
    .addOption(configOption())
    .addOption(new Option('--format <format>', 'text, dot or mermaid').choices(['text', 'dot', 'mermaid']).default('text'))
    .action(lazy(io, async () => (await import('./commands/explain.js')).graphCommand));

  const lease = program.command('lease').description('lease operations against the state store');
  lease
    .command('acquire')
    .description('take a lease on an owner key')
    .argument('<key>', 'owner key')
    .requiredOption('--ttl <duration>', 'lease time to live, e.g. 60s')
    .option('--holder <name>', 'who holds it (default: $REAPER_HOLDER, then user@host)')
    .addOption(configOption())
    .addOption(stateOption())
    .addOption(outputOption())
    .action(lazy(io, async () => (await import('./commands/lease.js')).leaseAcquire));
  lease
    .command('renew')
    .description('renew a lease (fails once it expired or was released)')
    .argument('<leaseId>', 'lease id')
    .option('--ttl <duration>', 'new time to live (default: the lease\'s own)')
    .addOption(configOption())
    .addOption(stateOption())
    .addOption(outputOption())
    .action(lazy(io, async () => (await import('./commands/lease.js')).leaseRenew));
  lease
    .command('release')
    .description('release a lease; its key is dead once no other lease holds it')
    .argument('<leaseId>', 'lease id')
    .addOption(configOption())
    .addOption(stateOption())
    .addOption(outputOption())
    .action(lazy(io, async () => (await import('./commands/lease.js')).leaseRelease));
  lease
    .command('list')
    .description('list active leases')
    .option('--key <key>', 'only this key')
    .option('--all', 'include expired and released leases')
    .addOption(configOption())
    .addOption(stateOption())
    .addOption(outputOption())
    .action(lazy(io, async () => (await import('./commands/lease.js')).leaseList));
  lease
    .command('prune')
    .description('delete leases that ended long ago, and old renewal statistics (never one a pending tombstone may still ask about)')
    .option('--older-than <duration>', 'how long ago a lease must have ended', '7d')
    .addOption(configOption())
    .addOption(stateOption())
    .addOption(outputOption())
    .action(lazy(io, async () => (await import('./commands/lease.js')).leasePrune));

  const runs = program
    .command('runs')
    .description('run history from the state store; a run killed before it recorded its end shows `running` until it shows `abandoned` once a later audit or reap on the same state store finds its heartbeat lapsed')
    .option('--limit <n>', 'how many runs', '20')
    .option('--job <id>', 'only the runs of this job: its shards and their reruns (docs/scale-out.md)')
    .addOption(configOption())
    .addOption(stateOption())
    .addOption(outputOption())
    .action(lazy(io, async () => (await import('./commands/runs.js')).runsList));
  runs
    .command('show')
    .description('what one run marked, deleted, lifted and failed')
    .argument('<runId>', 'run id')
    .addOption(configOption())
    .addOption(stateOption())
    .addOption(outputOption())
    .action(lazy(io, async () => (await import('./commands/runs.js')).runsShow));

  program
    .command('simulate')
    .description('compare garbage-collection strategies (leases, reference counting, mark-and-sweep, epochs, hybrid) under faults; deterministic')
    .argument('<scenario>', 'scenario file (YAML; examples in config/examples/simulate/)')
    .option('--seed <n>', "seed (default: the scenario's seed:, then 1)")
    .option('--strategy <name...>', 'only these: refcount, weighted-refcount, leases, mark-sweep, epochs, hybrid')
    .option('--vary <param=range>', 'sweep one parameter: grace=1s..120s (evenly, --steps values) or loss=0,0.05,0.1; parameters: grace, ttl, interval, heartbeat, sweep, minAge, skew, drift, loss, duplicate, jitter, latency, pause, downtime, fanout, trace, mark, announce')
    .option('--steps <n>', 'values taken from a --vary range', '6')
    .option('--html <file>', 'write a self-contained HTML report with SVG charts')
    .option('--svg <dir>', 'write each chart as an SVG file')
    .option('--live', 'run the leases strategy for real (files, SQLite, reaper daemon and reap processes) and compare with the simulator')
    .option('--work-dir <dir>', 'with --live: where to build the sandbox (default: a temporary directory, removed afterwards)')
    .addOption(outputOption())
    .action(lazy(io, async () => (await import('./commands/simulate.js')).simulateCommand));

  program
    .command('daemon')
    .description('heartbeat leases for owner keys; serve the HTTP lease API, /metrics, /healthz and /readyz')
    .option('--lease <key...>', 'owner keys to hold a lease on, renewed until the daemon stops')
    .option('--ttl <duration>', 'lease time to live, e.g. 30s (needed with --lease)')
    .option('--interval <duration>', 'renewal interval (default and maximum: a third of --ttl; jittered ±10%)')
    .option('--store-timeout <duration>', 'deadline of each state store call (default: half the renewal interval, at most 10s; 5s without --lease)')
    .option('--shutdown-timeout <duration>', 'on SIGTERM/SIGINT/SIGHUP, exit within this long whatever the state store does', '10s')
    .option('--holder <name>', 'who holds the leases (default: $REAPER_HOLDER, then user@host)')
    .option('--listen <host:port>', 'where the HTTP API listens (default: $REAPER_LISTEN, then 127.0.0.1:8476)')
    .option('--token-file <file>', 'file holding the API token (default: $REAPER_TOKEN)')
    .option('--no-auth', 'serve the API without a token (not recommended)')
    .option('--release-on-exit', 'release the leases on shutdown instead of letting them run out')
    .option('--lease-retention <duration>', 'hourly, delete leases that ended longer ago than this ("off": never)', '7d')
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (chain)')
    .option('--tls-key <file>', 'the PEM private key of --tls-cert')
    .option('--tls-ca <file>', 'PEM CA bundle that client certificates must chain to')
    .option('--require-client-cert', 'refuse clients without a certificate signed by --tls-ca')
    .option('--metrics-public', 'serve /metrics without the token')
    .option('--no-ui', 'do not serve the /ui dashboard (signed in with the same token)')
    .addOption(new Option('--log-level <level>', 'lowest level logged').choices(['debug', 'info', 'warn', 'error']).default('info'))
    .addOption(configOption())
    .addOption(stateOption())
    .action(lazy(io, async () => (await import('./commands/daemon.js')).daemonCommand));

  program
    .command('completion')
    .description('print a shell completion script (source <(reaper completion bash))')
    .addArgument(new Argument('<shell>', 'the shell').choices(['bash', 'zsh', 'fish']))
    .action(lazy(io, async () => (await import('./commands/completion.js')).completionCommand));

  return program;
}

/** Map any error to its exit code and a message for stderr (no secrets, no stack for known errors). */
export function describeError(error: unknown): { code: number; message: string } {
  if (error instanceof ManifestError) return { code: error.exitCode, message: error.issues.map(formatManifestIssue).join('\n') };
  if (error instanceof ReaperError) return { code: error.exitCode, message: `reaper: ${redact(error.message)}` };
  if (error instanceof CommanderError) return { code: ExitCode.usage, message: '' };
  if ((error as Error)?.name === 'AbortError') return { code: ExitCode.interrupted, message: 'reaper: interrupted' };
  const message = error instanceof Error ? error.message : String(error);
  return { code: ExitCode.runtime, message: `reaper: ${redact(message)}` };
}

/** Unit words typed after a number, as a duration's unit: [the word, the unit, how many of it one word is]. */
const UNIT_WORDS: readonly (readonly [RegExp, string, number])[] = [
  [/^(ms|millis|milliseconds?)$/i, 'ms', 1],
  [/^(s|secs?|seconds?)$/i, 's', 1],
  [/^(m|mins?|minutes?)$/i, 'm', 1],
  [/^(h|hrs?|hours?)$/i, 'h', 1],
  [/^(d|days?)$/i, 'd', 1],
  [/^(w|wks?|weeks?)$/i, 'd', 7],
];

/**
 * A duration flag given as two words (`--older-than 3 days`): a usage error saying it is one
 * word (`3d`), where the parser would say "too many arguments" or take the unit for an argument.
 */
function twoWordDuration(program: Command, args: readonly string[]): UsageError | null {
  const durationFlags = new Set<string>();
  const walk = (command: Command) => {
    for (const option of command.options) if (option.long && option.flags.includes('<duration>')) durationFlags.add(option.long);
    command.commands.forEach(walk);
  };
  walk(program);
  for (let i = 0; i < args.length && args[i] !== '--'; i++) {
    const arg = args[i]!;
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (!durationFlags.has(flag)) continue;
    const [value, next] = eq > 0 ? [arg.slice(eq + 1), args[i + 1]] : [args[i + 1], args[i + 2]];
    if (value === undefined || next === undefined || !/^\d+$/.test(value)) continue;
    const unit = UNIT_WORDS.find(([word]) => word.test(next));
    if (unit) return new UsageError(`${flag}: a duration is one word: write ${Number(value) * unit[2]}${unit[1]}, not "${value} ${next}"`);
  }
  return null;
}

/** Flags other tools have, and what reaper calls them: said plainly, where the parser would guess (`--json`: "did you mean --job?"). */
const FAMILIAR_FLAGS: Readonly<Record<string, string>> = {
  '--json': 'write --output json (or -o json)',
  '--table': 'write --output table (or -o table)',
  '--dry-run': 'reap is a dry run unless --execute is given; leave --dry-run out',
};

export function familiarFlag(program: Command, args: readonly string[]): UsageError | null {
  const takesValue = new Set<string>();
  // A flag some command defines is that command's own: never answered here.
  const defined = new Set<string>();
  const walk = (command: Command) => {
    for (const option of command.options) {
      for (const name of [option.long, option.short]) if (name) defined.add(name);
      if (option.required || option.optional) for (const name of [option.long, option.short]) if (name) takesValue.add(name);
    }
    command.commands.forEach(walk);
  };
  walk(program);
  for (let i = 0; i < args.length && args[i] !== '--'; i++) {
    const arg = args[i]!;
    if (takesValue.has(arg)) i++;
    else if (Object.hasOwn(FAMILIAR_FLAGS, arg) && !defined.has(arg)) return new UsageError(`${arg}: ${FAMILIAR_FLAGS[arg]}`);
  }
  return null;
}

/** Run the CLI in-process; resolves to the exit code. */
export async function run(argv: readonly string[], io: CliIO): Promise<number> {
  const program = buildProgram(io);
  try {
    const misread = twoWordDuration(program, argv.slice(2)) ?? familiarFlag(program, argv.slice(2));
    if (misread) throw misread;
    await program.parseAsync([...argv], { from: 'node' });
    return io.exitCode ?? ExitCode.ok;
  } catch (error) {
    if (error instanceof CommanderError && (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help')) {
      return ExitCode.ok;
    }
    const described = describeError(error);
    const { message } = described;
    // A command that failed may have asked for a higher code first (an output a signal stopped).
    const code = Math.max(described.code, io.exitCode ?? 0);
    if (io.log) io.log.error('run-failed', { exitCode: code, message: message.replace(/^reaper: /, '') });
    else if (message) io.stderr.write(`${message}\n`);
    return code;
  }
}

/** The signals that stop a command: the first at its next safe point, a second at once (docs/safety.md §19). */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** How long a second signal waits for the open run to be recorded `interrupted` before the process exits. */
export const HARD_STOP_DEADLINE_MS = 1500;

/** The process entry used by bin/reaper. */
export async function main(argv: readonly string[]): Promise<void> {
  const { guardStreams, processIO } = await import('./io.js');
  // A write that failed (not a reader gone) is exit 3 at least, even when the error comes after the run ended.
  let streamFailed = false;
  let ended = false;
  guardStreams(process, () => {
    streamFailed = true;
    if (ended) process.exitCode = Math.max(Number(process.exitCode ?? 0), ExitCode.runtime);
  });
  const controller = new AbortController();
  const io = processIO(controller.signal);
  let signals = 0;
  // What the first signal does depends on the command: a reap finishes its batch, the daemon stops (docs/leases.md), the rest stop where they stand.
  const command = argv.slice(2).find((a) => !a.startsWith('-'));
  const stopping = command === 'reap' ? 'finishing the current batch' : command === 'daemon' ? 'stopping' : 'stopping at the next safe point';
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      const notice = `${stopping} (send it again to stop at once)`;
      // A command that keeps a JSON log gets the notice there: no plain line among JSON lines.
      if (io.log) io.log.warn('signal', { signal, message: notice });
      else process.stderr.write(`reaper: ${signal} received; ${notice}\n`);
      controller.abort(new Error(signal));
    } else if (signals === 2) {
      // Stop at once, but first record the open run as `interrupted` (best effort, within
      // HARD_STOP_DEADLINE_MS) rather than leave it `running` until its heartbeat lapses.
      // A third signal does not wait for that (docs/safety.md §19).
      void import('../run/hard-stop.js')
        .then((m) => m.runHardStopHooks(HARD_STOP_DEADLINE_MS))
        .catch(() => undefined)
        .finally(() => process.exit(ExitCode.interrupted));
    } else {
      killProcessGroups(); // no handler call outlives reaper (docs/safety.md §19)
      process.exit(ExitCode.interrupted);
    }
  };
  // SIGHUP (the terminal closed, an ssh or `kubectl exec` session gone) stops the command as
  // SIGTERM does, with the same records: left to Node.js it would end the process at once.
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  const code = await run(argv, io);
  for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
  ended = true;
  process.exitCode = streamFailed ? Math.max(code, ExitCode.runtime) : code;
}
