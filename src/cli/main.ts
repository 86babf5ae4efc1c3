/**
 * `kindling` / `firecracker` entry point (firecracker src/firecracker/src/main.rs and
 * api_server_adapter.rs): parse the
 * command line, set up logger and metrics, then either serve the API on a Unix socket (booting
 * from `--config-file` first if given, after which only post-boot requests succeed) or, with
 * `--no-api`, boot from the config file alone. The VM itself comes from an injected
 * `VmFactory` (src/cli/kvm.ts for the binary), so tests can run the CLI without KVM.
 *
 * Startup failures are reported as Firecracker's `main` reports a `MainError`: its Display in the
 * log, `Error: <Debug>` on stderr, exit code 1 (152/153 for level/argument errors); host I/O
 * errors in Rust's words (src/util/io-error.ts), never Node's. `runCli` resolves with the process
 * exit code; 134 means "abort" (Firecracker panics there).
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { ApiServer } from '../api/server.js';
import { FIRECRACKER_VERSION } from '../vmm/actions.js';
import { VmmController } from '../vmm/controller.js';
import type { VmFactory } from '../vmm/running-vm.js';
import { preloadSerializer } from '../util/json-serializer.js';
import { ConfigFileError, fromConfigFile } from '../config/config-file.js';
import { ConfigError, HostIoError, ioErrorDebug, ioErrorText, unixSocketPathError } from '../config/errors.js';
import { VmResources } from '../config/resources.js';
import { parseJsonValue } from '../config/serde-read.js';
import { LOGGER, Logger } from '../logger/logger.js';
import { METRICS, Metrics } from '../metrics/metrics.js';
import { formattedHelp } from './arg-parser.js';
import { CliError, CliOptions, EXIT, FIRECRACKER_ARGS, exitCodeName, parseCommandLine } from './options.js';
import { BUNDLE } from '../util/bundle-info.js';
import { hardenSignalHandlers, installSignalHandlers, markSeccompInstalled } from './signals.js';
import { parseFilterFile } from '../seccomp/filter.js';
import { SNAPSHOT_VERSION as STATE_FILE_VERSION, readStateFileVersion, versionText } from '../snapshot/state-file.js';

/**
 * --snapshot-version prints the version of the state files this build writes and
 * --describe-snapshot the version a file holds, so a tool comparing the two learns whether a
 * file loads. Kindling's format is its own (src/snapshot/state-file.ts); Firecracker v1.16.1
 * prints v11.0.0 for its bitcode format, which Kindling neither reads nor writes.
 */
export const SNAPSHOT_VERSION = versionText(STATE_FILE_VERSION);

/** Makes the VM factory for one process; `metrics` is the registry the devices report into. */
export type FactoryMaker = (opts: { instanceId: string; metrics: Metrics }) => VmFactory;

/** Dependencies of `runCli` (injected so tests can supply the VM). */
export interface CliDeps {
  createFactory: FactoryMaker;
  stdout?: (s: string) => void;
  stderr?: (s: string) => void;
  logger?: Logger;
  metrics?: Metrics;
  /**
   * Ends a CLI that has no VM to wait for (it serves its API until then): runCli closes the
   * server and returns 0 once this resolves. Tests and embedders use it; the binary does not.
   */
  shutdown?: Promise<unknown>;
  /** Kindling's own version (default: package.json). */
  kindlingVersion?: string;
  /**
   * The binary's process-wide duties (src/cli/signals.ts): Firecracker's signal handlers and
   * panic hook, ending the process through `exit`. Tests running the CLI in-process leave it out.
   */
  process?: { exit: (code: number) => void };
}

const MAIN = { thread: 'main', module: 'firecracker::main' } as const;

function packageVersion(): string {
  if (BUNDLE) return BUNDLE.version; // the bundle lives elsewhere than ../../../ from here
  try {
    const url = new URL('../../../package.json', import.meta.url);
    return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Runs the CLI; resolves with the exit code (after the VM stopped, in run mode). */
export async function runCli(argv: readonly string[], deps: CliDeps): Promise<number> {
  const out = deps.stdout ?? ((s: string) => void process.stdout.write(s));
  const err = deps.stderr ?? ((s: string) => void process.stderr.write(s));
  const logger = deps.logger ?? LOGGER;
  const metrics = deps.metrics ?? METRICS;
  logger.metrics ??= metrics;
  const fail = (message: string, debug: string, code: number): number => {
    if (code === EXIT.Abort) {
      err(`thread 'main' panicked at src/cli/main.ts:\n${message}\n`);
      return code;
    }
    logger.error(message, MAIN);
    err(`Error: ${debug}\n`);
    logger.error(`Firecracker exiting with error. exit_code=${code}`, MAIN);
    return code;
  };
  let cmd;
  try {
    cmd = parseCommandLine(argv);
  } catch (e) {
    if (e instanceof CliError) return fail(e.message, e.debug, e.exitCode);
    throw e;
  }
  switch (cmd.kind) {
    case 'help':
      out(`Firecracker v${FIRECRACKER_VERSION}\n\n${formattedHelp(FIRECRACKER_ARGS)}\n`);
      return EXIT.Ok;
    case 'version':
      out(`Firecracker v${FIRECRACKER_VERSION}\nKindling v${deps.kindlingVersion ?? packageVersion()}\n\n`);
      return EXIT.Ok;
    case 'snapshot-version':
      out(`v${SNAPSHOT_VERSION}\n`);
      return EXIT.Ok;
    case 'describe-snapshot':
      try {
        accessSync(cmd.path, constants.R_OK);
      } catch (e) {
        const m = `When printing Snapshot Data format: Unable to open snapshot state file: ${ioErrorText(e)}`;
        return fail(m, `PrintSnapshotDataFormat(OpenSnapshot(${ioErrorDebug(e)}))`, EXIT.GenericError);
      }
      try {
        out(`v${versionText(readStateFileVersion(readFileSync(cmd.path)))}\n`);
        return EXIT.Ok;
      } catch (e) {
        return fail(
          `When printing Snapshot Data format: Invalid data format version of snapshot file: ${(e as Error).message}`,
          'PrintSnapshotDataFormat(SnapshotVersion(InvalidFormatVersion))',
          EXIT.GenericError,
        );
      }
  }
  return run(cmd, deps, logger, metrics, fail);
}

async function run(o: CliOptions, deps: CliDeps, logger: Logger, metrics: Metrics, fail: (m: string, d: string, c: number) => number): Promise<number> {
  logger.instanceId = o.id;
  try {
    logger.update({ log_path: o.logPath, level: o.level, show_level: o.showLevel ? true : null, show_log_origin: o.showLogOrigin ? true : null, module: o.module });
  } catch (e) {
    return fail(`Could not initialize logger: ${(e as ConfigError).detail}`, `LoggerInitialization(${(e as ConfigError).detail})`, EXIT.GenericError);
  }
  logger.info(`Running Firecracker v${FIRECRACKER_VERSION}`, MAIN);
  // register_signal_handlers() comes right after this line in Firecracker's main. The libc part
  // (one-shot fault handlers, `_exit`) waits for the VM machinery (harden below).
  let exitProcess = deps.process?.exit;
  if (deps.process) installSignalHandlers({ logger, metrics, exit: (code) => exitProcess!(code) });
  const harden = (): void => {
    if (!deps.process) return;
    void hardenSignalHandlers().then((exitNow) => {
      // A panic still aborts through the binary's own exit (SIGABRT, not _exit).
      const binaryExit = deps.process!.exit;
      exitProcess = (code) => (code === EXIT.Abort ? binaryExit(code) : exitNow(code));
    }, (e: Error) => logger.warn(`Signal handlers stay without their libc part: ${e.message}`, MAIN));
  };
  if (o.metricsPath !== null) {
    try {
      metrics.init({ metrics_path: o.metricsPath, emit_id: false, properties: null }, o.id);
    } catch (e) {
      return fail(`Could not initialize metrics: ${(e as ConfigError).detail}`, `MetricsInitialization(${(e as ConfigError).detail})`, EXIT.GenericError);
    }
  }
  // Seccomp (docs/design.md, Seccomp): the filter is read and compiled now, and installed on
  // every thread before the API serves or a VM is built, as Firecracker filters its API
  // thread before the HTTP server starts. Only the binary installs one: a test running the
  // CLI in its own process must not filter itself.
  let filterText: string | null = null;
  if (o.seccompFilter !== null) {
    try {
      filterText = readFileSync(o.seccompFilter, 'utf8');
    } catch (e) {
      return fail(`Seccomp error: Filter file open error: ${ioErrorText(e)}`, `SeccompFilter(FileOpen(${ioErrorDebug(e)}))`, EXIT.GenericError);
    }
  }
  try {
    // A bad file fails here in every mode, in-process too, before anything starts.
    if (filterText !== null) parseFilterFile(filterText);
    if (deps.process && !o.noSeccomp) {
      const { installSeccomp } = await import('../seccomp/process.js');
      installSeccomp(filterText);
      markSeccompInstalled();
    }
  } catch (e) {
    const m = (e as Error).message;
    return fail(`Seccomp error: ${m}`, `SeccompFilter(${JSON.stringify(m)})`, EXIT.GenericError);
  }
  // `fs::read_to_string(..).expect(..)`: the panic shows the io::Error's Debug form.
  const readOrPanic = (path: string | null, what: string): string | null => {
    if (path === null) return null;
    try {
      return readFileSync(path, 'utf8');
    } catch (e) {
      throw new CliError(`Unable to open or read from the ${what}: ${ioErrorDebug(e)}`, EXIT.Abort, 'panic');
    }
  };
  let configJson: string | null;
  let metadata: string | null;
  try {
    configJson = readOrPanic(o.configFile, 'configuration file');
    metadata = readOrPanic(o.metadata, 'mmds content file');
  } catch (e) {
    return fail((e as CliError).message, 'panic', EXIT.Abort);
  }
  const factory = deps.createFactory({ instanceId: o.id, metrics });
  const openTap = factory.openTap?.bind(factory);
  const resources = new VmResources({ mmdsSizeLimit: o.mmdsSizeLimit, bootTimer: o.bootTimer, pciEnabled: o.enablePci, openTap });
  const controller = new VmmController({ instanceId: o.id, factory, resources, logger, metrics });
  if (metadata !== null && configJson === null) {
    try {
      resources.mmdsOrDefault().put(parseJsonValue(metadata));
    } catch (e) {
      return fail(`MMDS error: metadata provided not valid json: ${(e as Error).message}`, 'panic', EXIT.Abort);
    }
  }
  let server: ApiServer | null = null;
  let fatal: ((code: number) => void) | null = null;
  const fatalExit = new Promise<number>((r) => (fatal = r));
  const prefix = o.noApi ? 'RunWithoutApiError error' : 'RunWithApiError error';
  // With a config file the VM is built and running before the API serves its first request
  // (Firecracker's run_with_api builds it on the VMM thread while the API thread queues what
  // arrives): the socket listens at once, requests wait behind this gate.
  let openGate = (): void => undefined;
  const gate = configJson !== null && !o.noApi ? new Promise<void>((r) => { openGate = r; }) : undefined;
  if (o.noApi) harden();
  if (!o.noApi) {
    // Node would cut a path at a NUL byte or at 107 bytes and listen somewhere else.
    const invalid = unixSocketPathError(o.apiSock);
    if (invalid) return failBind(fail, prefix, o.apiSock, invalid);
    server = new ApiServer({
      socketPath: o.apiSock,
      controller,
      payloadMaxSize: o.httpApiMaxPayloadSize,
      ready: gate,
      onFatal: () => {
        logger.error(`${prefix}: Failed to build MicroVM: Loading snapshot failed..`, MAIN);
        fatal!(EXIT.GenericError);
      },
    });
    try {
      await server.listen();
    } catch (e) {
      // ApiServer rejects EADDRINUSE with Firecracker's own text and no cause; other failures
      // carry Node's error as the cause.
      const cause = (e as Error).cause;
      const inUse = cause === undefined || (cause as NodeJS.ErrnoException).code === 'EADDRINUSE';
      return failBind(fail, prefix, o.apiSock, inUse ? 'in-use' : listenError(o.apiSock, cause));
    }
    logger.info(`Listening on API socket (${JSON.stringify(o.apiSock)}).`, MAIN);
    // Accepting first; then load what the first replies and InstanceStart need.
    setImmediate(preloadSerializer);
    factory.warmUp?.();
    setImmediate(harden);
    // ProcessTimeReporter: --start-time-us is CLOCK_MONOTONIC µs (set by the jailer).
    const monoUs = Number(process.hrtime.bigint() / 1000n);
    if (o.startTimeUs !== null) metrics.api_server.process_startup_time_us.store(Math.max(0, monoUs - o.startTimeUs));
    if (o.startTimeCpuUs !== null) {
      const cpu = process.cpuUsage();
      metrics.api_server.process_startup_time_cpu_us.store(Math.max(0, cpu.user + cpu.system - o.startTimeCpuUs + (o.parentCpuTimeUs ?? 0)));
    }
  }
  if (configJson !== null) {
    try {
      await factory.prepare?.();
      controller.resources = fromConfigFile(configJson, {
        mmdsSizeLimit: o.mmdsSizeLimit, bootTimer: o.bootTimer, pciEnabled: o.enablePci, openTap, metadata,
        configureLogger: (c) => controller.configureLogger(c),
        configureMetrics: (c) => controller.configureMetrics(c),
      });
      await controller.startMicroVm();
      logger.info('Successfully started microvm that was configured from one single json', MAIN);
      openGate();
    } catch (e) {
      await server?.close();
      if (e instanceof ConfigFileError && e.panic) return fail(e.message, 'panic', EXIT.Abort);
      const inner = e instanceof ConfigFileError ? `Configuration for VMM from one single json failed: ${e.message}` : `Could not Start MicroVM from one single json: ${(e as Error).message.replace(/^Start microvm error: /, '')}`;
      return fail(`${prefix}: Failed to build MicroVM from Json: ${inner}`, `BuildFromJson(${JSON.stringify(inner)})`, EXIT.GenericError);
    }
  }
  const outcome = await Promise.race([
    controller.exited.then((x) => ({ exit: x })),
    fatalExit.then((code) => ({ code })),
    ...(deps.shutdown ? [deps.shutdown.then(() => ({ code: EXIT.Ok }))] : []),
  ]);
  await server?.close();
  controller.close();
  if ('code' in outcome) return outcome.code;
  if (outcome.exit.code === 0) {
    logger.info('Firecracker exiting successfully. exit_code=0', MAIN);
    return EXIT.Ok;
  }
  // ApiServerError::MicroVMStoppedWithError / RunWithoutApiError::Shutdown print the FcExitCode's
  // name (`{:?}`); the vCPU's own failure line was logged when it happened.
  const name = exitCodeName(outcome.exit.code);
  if (o.noApi) return fail(`${prefix}: MicroVMStopped without an error: ${name}`, `RunWithoutApiError(Shutdown(${name}))`, outcome.exit.code);
  return fail(`${prefix}: MicroVM stopped with an error: ${name}`, `RunWithApi(MicroVMStoppedWithError(${name}))`, outcome.exit.code);
}

/**
 * `HttpServer::new` failing in `run_with_api` (src/firecracker/src/api_server_adapter.rs): a path
 * already in use is `FailedToBindSocket`; any other failure is `FailedToBindAndRunHttpServer`
 * around micro_http's `ServerError::IOError` ("IO error: {0}"). Both exit with 1.
 */
function failBind(fail: (m: string, d: string, c: number) => number, prefix: string, path: string, io: HostIoError | 'in-use'): number {
  if (io === 'in-use') {
    return fail(`${prefix}: Failed to open the API socket at: ${path}. Check that it is not already used.`, `RunWithApi(FailedToBindSocket(${JSON.stringify(path)}))`, EXIT.GenericError);
  }
  return fail(`${prefix}: Failed to bind and run the HTTP server: IO error: ${io.message}`, `RunWithApi(FailedToBindAndRunHttpServer(IOError(${io.debug})))`, EXIT.GenericError);
}

/**
 * The errno bind(2) gave for the API socket. libuv reports ENOENT (a missing directory) as
 * EACCES "for compatibility with Windows" (uv_pipe_bind, src/unix/pipe.c), so an EACCES whose
 * directory does not exist is that directory's ENOENT/ENOTDIR, as Firecracker would print it.
 */
function listenError(path: string, cause: unknown): HostIoError {
  const io = HostIoError.from(cause) ?? HostIoError.std('Uncategorized', String((cause as Error)?.message ?? cause));
  if ((cause as NodeJS.ErrnoException).code !== 'EACCES') return io;
  try {
    statSync(dirname(path));
    return io;
  } catch (e) {
    return HostIoError.from(e) ?? io;
  }
}

/**
 * The factory used when no VM implementation is wired in: supports nothing, so InstanceStart
 * names the first configured device as unsupported.
 */
export const unavailableFactory: FactoryMaker = () => ({
  supports: () => false,
  boot: () => Promise.reject(new Error('No VM factory is wired into this Kindling build.')),
});
