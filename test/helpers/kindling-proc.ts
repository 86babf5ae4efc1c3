/**
 * A `bin/kindling` child process as Firecracker's users run one: an API socket, logs to a
 * file, the serial console on stdout and the console input on stdin. Kindling, as
 * Firecracker, reads stdin into the UART when it is a terminal or a pipe, and a Node 'pipe'
 * stdio is a socket pair, so stdin here is a named pipe (mkfifo) this side keeps open.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FirecrackerClient } from 'kindling/client';
import { pollUntil } from './poll.js';

const BIN = resolve('bin/kindling.js');

export class KindlingProc {
  readonly child: ChildProcess;
  readonly sock: string;
  readonly logPath: string;
  /** Serial console text so far. */
  console = '';
  readonly exit: Promise<number | null>;
  private stderr = '';
  private readonly stdinFd: number;
  /** kill() closed stdinFd (a test may call kill() more than once, e.g. again in a finally). */
  private stdinClosed = false;
  private readonly prefixed: boolean;
  /** Clients handed out, closed by kill() (an open one keeps the test process alive). */
  private readonly clients: FirecrackerClient[] = [];

  /** `prefix`: a command the VMM runs under, e.g. `ip netns exec <ns>` (its TAPs live there). */
  constructor(dir: string, name: string, extraArgs: string[] = [], prefix: string[] = []) {
    this.sock = join(dir, `${name}.sock`);
    this.logPath = join(dir, `${name}.log`);
    this.prefixed = prefix.length > 0;
    const fifo = join(dir, `${name}.stdin`);
    const made = spawnSync('mkfifo', [fifo]);
    if (made.status !== 0) throw new Error(`mkfifo ${fifo}: ${made.stderr}`);
    // O_RDWR: opening a FIFO for both ends never blocks, and the write end stays open.
    this.stdinFd = openSync(fifo, 'r+');
    const argv = [process.execPath, BIN, '--api-sock', this.sock, '--id', name, '--log-path', this.logPath, ...extraArgs];
    const [cmd, ...args] = [...prefix, ...argv];
    this.child = spawn(cmd!, args, { stdio: [this.stdinFd, 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (b: Buffer) => { this.console += b.toString(); });
    this.child.stderr!.on('data', (b: Buffer) => { this.stderr += b.toString(); });
    this.exit = new Promise((r) => this.child.on('exit', (code) => r(code)));
  }

  /**
   * The API client, once the server accepts: the socket file appears at bind(), a moment
   * before listen(), and a connect in between is refused (seen with ten VMMs starting at once).
   */
  async api(ms = 60_000): Promise<FirecrackerClient> {
    const deadline = performance.now() + ms;
    await pollUntil(() => existsSync(this.sock), ms, () => `the API socket of ${this.sock} did not appear${this.tail()}`, 50);
    // Replies can take long in the nested sandbox (ten restores at once on two emulated CPUs).
    const client = new FirecrackerClient(this.sock, { headersTimeout: 180_000, bodyTimeout: 180_000 });
    this.clients.push(client);
    for (;;) {
      try {
        await client.request('GET', '/');
        return client;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? ((e as { cause?: NodeJS.ErrnoException }).cause)?.code;
        if (code !== 'ECONNREFUSED' || performance.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /**
   * The VMM's own pid: `ip netns exec` execs the command in place on some iproute2 versions
   * and forks it on others (then the VMM is the child's only child).
   */
  vmmPid(): number {
    const pid = this.child.pid!;
    if (!this.prefixed) return pid;
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    if (kids.length > 1) throw new Error(`expected at most one process under ${pid}, found ${kids.join(',')}`);
    return kids[0] ?? pid;
  }

  /** Types a line into the guest's console. */
  type(line: string): void {
    writeSync(this.stdinFd, `${line}\n`);
  }

  /** The first match of `re` in the console, waiting up to `ms`. */
  async waitConsole(re: RegExp, ms: number, from = 0): Promise<RegExpMatchArray> {
    await pollUntil(() => re.test(this.console.slice(from)), ms, () => `the console did not show ${re}${this.tail()}`, 50);
    return this.console.slice(from).match(re)!;
  }

  /** The last lines of console, stderr and log, for failure messages. */
  tail(): string {
    const log = existsSync(this.logPath) ? readFileSync(this.logPath, 'utf8').slice(-1500) : '';
    return `\nconsole:\n${this.console.slice(-1200)}\nstderr:\n${this.stderr.slice(-500)}\nlog:\n${log}`;
  }

  /**
   * Ends the process (SIGKILL) and waits for it. Idempotent: the stdin fd is closed once. A
   * second close of the same number closes whatever descriptor this process opened since (the
   * kernel hands out the lowest free number). snapshot.test kills A and D a second time in its
   * `finally`; after that, in the KVM tier's rerun of the file, no new API client's connect
   * ever completed (reproduced in the sandbox; the rerun passes with this guard).
   */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exit;
    await Promise.all(this.clients.splice(0).map((c) => c.close().catch(() => undefined)));
    if (this.stdinClosed) return;
    this.stdinClosed = true;
    closeSync(this.stdinFd);
  }
}
