/**
 * virtio-vsock under real KVM, one Debian-kernel guest shared by every case (its initramfs
 * loads the vsock modules; socat from Debian is the guest's tool, guest-vsock-initrd). The
 * guest fetches its script over vsock itself (a guest connection to `<uds_path>_6100`), then
 * listens on 5000 (a 16 MiB exchange) and 5001 (an echo service) and connects out:
 *   (a) the host connects with `CONNECT 5000`: 16 MiB each way at once (the guest echoes what
 *       it receives and hashes it), SHA-256 equal on both ends;
 *   (b) the guest connects to port 6000: the host's `<uds_path>_6000` listener gets its message;
 *   (c) the guest connects to 6001, where nobody listens: refused (connection reset);
 *   (d) 100 concurrent host connections to the echo service each get their message back;
 *   hostile host clients (garbage, silence, 2000 connects to a port nobody serves): all
 *   counted and closed, the VMM's fd count back where it was, and the guest still served;
 * then the metrics file's `vsock` group, and after the VM stops no fd is left.
 * The VMM runs in this process (the MicroVm library), so /proc/self/fd counts its fds.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MicroVm } from 'kindling';
import { createMetrics } from '../../src/metrics/metrics.js';
import { readMetricsFile } from '../helpers/metrics-file.js';
import { ConsoleLog, consoleEnd, fixture, testBootArgs, withTimeout } from '../helpers/guest.js';
import { sha256, totalBytes, vsockConnect, vsockListener, writeAll } from '../helpers/vsock-client.js';

const MiB = 1 << 20;
const EXCHANGE = 16 * MiB;
const ECHO_CONNS = 100;
const REFUSED_CONNECTS = 2000;
const dir = mkdtempSync(join(tmpdir(), 'kindling-vsock-'));
const uds = join(dir, 'v.sock');
const openFds = (): number => readdirSync('/proc/self/fd').length;
/** Waits for `cond`; gives up after `ms`, or at once when the guest has gone (nothing would change). */
const until = async (cond: () => boolean, ms: number, what: () => string): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what()}`);
    if (vm?.state === 'Exited' && !stopping) throw new Error(`the VM exited: ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

/**
 * The guest's part, fetched over vsock (the command line is too small for it). (a) echoes what
 * it receives (tee) while storing it, then hashes it: one SHA-256 pass in the guest, which is
 * slow nested.
 */
const GUEST_SCRIPT = `
cat > /tmp/a.sh <<'END'
head -c ${EXCHANGE} | tee /tmp/in
sha256sum /tmp/in | cut -d' ' -f1 > /tmp/in.sha
END
socat VSOCK-LISTEN:5000 EXEC:"sh /tmp/a.sh" &
A=$!
socat VSOCK-LISTEN:5001,fork,backlog=200 EXEC:cat &
sleep 1
echo VSOCK_LISTENING
echo "hello from the guest" | socat - VSOCK-CONNECT:2:6000; echo "B_RC=$?"
socat - VSOCK-CONNECT:2:6001 </dev/null 2>/tmp/c.err; echo "C_RC=$? $(cat /tmp/c.err)"
wait $A
echo "IN_SHA $(cat /tmp/in.sha)"
echo GUEST_A_DONE
sleep 100000
`;

let vm: MicroVm | undefined;
/** The last test stops the VM on purpose. */
let stopping = false;
let con: ConsoleLog | undefined;
let scriptServer: Server | undefined;
let hello: Awaited<ReturnType<typeof vsockListener>> | undefined;
const metrics = createMetrics();
const metricsPath = join(dir, 'metrics.ndjson');
let fdsBeforeVm = 0;
let t0 = Date.now();

/** One line of where things stand: the guest's last console line and the device's counters. */
function progress(): string {
  const last = con?.text.trim().split('\n').pop()?.slice(0, 160) ?? '';
  const m = vm?.vsockMetrics;
  const v = m
    ? `rx ${m.rx_bytes_count} tx ${m.tx_bytes_count} pkts ${m.rx_packets_count}/${m.tx_packets_count} conns +${m.conns_added}/-${m.conns_removed} refused ${m.guest_connects_refused} invalid ${m.host_connects_invalid}`
    : 'no device yet';
  return `[vsock +${Math.round((Date.now() - t0) / 1000)} s] ${vm?.state ?? 'no vm'}; ${v}; console: ${JSON.stringify(last)}`;
}
// Nested runs are slow: say every 30 s where the test is, so a stall shows where it stalled.
// Only once this file's tests run (the tier imports every file first; earlier files' output
// would otherwise carry "no vm" lines from here).
let ticker: NodeJS.Timeout | undefined;

/** Whether a failure has printed the console's end already (`running`). */
let toldConsole = false;
/** The running VM and its console (fails when the boot test did not get that far). */
function running(): { vm: MicroVm; con: ConsoleLog } {
  if (!vm || !con || vm.state !== 'Running') {
    // The first time only: the console's end says how the guest died (a panic's report, a
    // triple fault), which the one-line progress cuts to its last line.
    const end = con && !toldConsole ? `\nconsole's end:\n${consoleEnd(con.text)}` : '';
    toldConsole ||= end !== '';
    throw new Error(`no running guest: ${progress()}${end}`);
  }
  return { vm, con };
}

test.before(async () => {
  t0 = Date.now();
  ticker = setInterval(() => console.log(`    ${progress()}`), 30_000);
  ticker.unref();
  scriptServer = createServer((s) => { s.on('error', () => undefined); s.end(GUEST_SCRIPT); });
  await new Promise<void>((r) => scriptServer!.listen(`${uds}_6100`, r));
  hello = await vsockListener(`${uds}_6000`);
  metrics.init({ metrics_path: metricsPath, emit_id: false, properties: null }, 'kindling-vsock-test');
  fdsBeforeVm = openFds(); // this test's own listeners and metrics file included
});

test.after(async () => {
  if (ticker) clearInterval(ticker);
  if (vm && vm.state !== 'Exited' && vm.state !== 'Not started') {
    await withTimeout(vm.stop(), 120_000, () => `the VM did not stop: ${progress()}`).catch((e: Error) => console.log(`    ${e.message}`));
  }
  scriptServer?.close();
  hello?.server.close();
  hello?.sockets.forEach((s) => s.destroy());
  metrics.close();
  rmSync(dir, { recursive: true, force: true });
});

test('boot: the guest fetches its script over vsock and listens', async () => {
  vm = new MicroVm({
    'boot-source': {
      kernel_image_path: fixture('vmlinuz'), initrd_path: fixture('guest-vsock-initrd.cpio.gz'),
      boot_args: testBootArgs('"socat -u VSOCK-CONNECT:2:6100 CREATE:/tmp/s && sh /tmp/s"'),
    },
    'machine-config': { vcpu_count: 2, mem_size_mib: 512 },
    vsock: { guest_cid: 3, uds_path: uds },
  }, { log: (level, msg) => { if (level !== 'info') console.log(`    kindling ${level}: ${msg}`); }, metrics });
  con = new ConsoleLog(vm.console);
  await withTimeout(vm.start(), 300_000, () => `InstanceStart did not finish: ${progress()}`);
  // A guest that dies in its boot (the nested rig's triple faults) fails the test at once,
  // with the VM's exit reason, instead of after the console wait's ten minutes, which took a
  // CI run of 2026-12-07 to the sandbox's deadline.
  const died = vm.exit.then((e) => { throw new Error(`the VM exited during the boot (${e.reason}); console:\n${consoleEnd(con!.text)}`); });
  await Promise.race([con.waitFor(/VSOCK_LISTENING/, 600_000), died]);
  died.catch(() => undefined);
  console.log(`    ${progress()}`);
});

test('(a) host CONNECT 5000: 16 MiB each way at once, SHA-256 equal on both ends', async () => {
  const { con: c0 } = running();
  const data = randomBytes(EXCHANGE);
  const start = performance.now();
  const c = await vsockConnect(uds, 5000);
  let sentAt = 0;
  const sending = writeAll(c.socket, data).then(() => { sentAt = performance.now(); });
  await until(() => totalBytes(c.received) >= EXCHANGE, 900_000, () => `the echo stalled at ${totalBytes(c.received)} bytes; ${progress()}`);
  const doneAt = performance.now();
  await sending;
  assert.is(totalBytes(c.received), EXCHANGE, 'guest → host: all 16 MiB');
  assert.is(sha256(c.received), sha256([data]), 'guest → host: the echo is intact');
  const inSha = (await c0.waitFor(/IN_SHA ([0-9a-f]{64})/, 300_000))[1];
  assert.is(inSha, sha256([data]), 'host → guest: intact');
  await withTimeout(c.closed, 60_000, 'the guest did not close the exchange');
  const mibs = (ms: number): string => (EXCHANGE / MiB / (ms / 1000)).toFixed(1);
  console.log(`    (a) host sent 16 MiB in ${((sentAt - start) / 1000).toFixed(2)} s, echo complete after ${((doneAt - start) / 1000).toFixed(2)} s (${mibs(doneAt - start)} MiB/s each way)`);
});

test('(b) the guest connects to port 6000: <uds_path>_6000 gets its message', async () => {
  const { con: c0 } = running();
  await c0.waitFor(/B_RC=(\d+)/, 120_000);
  assert.match(c0.text, /B_RC=0/);
  const got = (): string[] => hello!.conns.map((c) => Buffer.concat(c).toString());
  await until(() => got().includes('hello from the guest\n'), 30_000, () => `got ${JSON.stringify(got())}`);
});

test('(c) a guest connect to a port nobody listens on is refused; the VMM is unharmed', async () => {
  const { vm: v, con: c0 } = running();
  const m = await c0.waitFor(/C_RC=(\d+) ([^\n]*)\n/, 120_000);
  assert.is.not(m[1], '0');
  assert.match(m[2]!, /Connection reset by peer/);
  assert.ok(v.vsockMetrics!.guest_connects_refused >= 1);
  assert.is(v.state, 'Running');
});

test(`(d) ${ECHO_CONNS} concurrent host connections each exchange a message`, async () => {
  const { con: c0 } = running();
  await c0.waitFor(/GUEST_A_DONE/, 300_000); // (a)'s one-shot listener is gone; the echo service stays
  const results = await Promise.all(Array.from({ length: ECHO_CONNS }, async (_, i) => {
    const msg = `message ${i} ${'x'.repeat(i)}\n`;
    const c = await vsockConnect(uds, 5001, Buffer.from(msg), 300_000);
    await until(() => totalBytes(c.received) >= msg.length, 300_000, () => `connection ${i} got ${totalBytes(c.received)} bytes; ${progress()}`);
    c.socket.destroy();
    return { got: Buffer.concat(c.received).toString(), msg, port: c.localPort };
  }));
  for (const r of results) assert.is(r.got, r.msg);
  assert.is(new Set(results.map((r) => r.port)).size, ECHO_CONNS, 'each connection has its own local port');
});

test(`hostile host clients: garbage, silence and ${REFUSED_CONNECTS} connects to an unserved port; counted, closed, no fd leak`, async () => {
  const { vm: v } = running();
  const settled = (): boolean => v.vsockMetrics!.conns_added === v.vsockMetrics!.conns_removed;
  await until(settled, 120_000, () => `the echo connections to go; ${progress()}`);
  const before = openFds();
  const m0 = v.vsockMetrics!;
  const raw = (first?: string) => {
    const s = createConnection(uds);
    s.on('error', () => undefined);
    if (first !== undefined) s.write(first);
    return { s, closed: new Promise<void>((r) => s.once('close', () => r())) };
  };
  const garbage = Array.from({ length: 200 }, (_, i) => raw(i % 2 ? 'GET / HTTP/1.1\r\n\r\n' : `${'\u0000'.repeat(i % 30)}\u00ff CONNECT\n`));
  const silent = Array.from({ length: 100 }, () => raw());
  await withTimeout(Promise.all(garbage.map((g) => g.closed)), 120_000, 'the garbage clients were not all closed');
  // Meanwhile a well-behaved client is served.
  const ok = await vsockConnect(uds, 5001, Buffer.from('still here\n'), 120_000);
  await until(() => Buffer.concat(ok.received).toString() === 'still here\n', 120_000, () => `the echo during the flood; ${progress()}`);
  ok.socket.destroy();
  silent.forEach((s) => s.s.destroy());
  // Connects to port 5999: the guest answers each REQUEST with RST, the VMM closes the client.
  for (let wave = 0; wave < REFUSED_CONNECTS / 200; wave++) {
    const w = Array.from({ length: 200 }, () => raw('CONNECT 5999\n'));
    await withTimeout(Promise.all(w.map((x) => x.closed)), 300_000, () => `wave ${wave} of refused connects was not closed; ${progress()}`);
  }
  const m = v.vsockMetrics!;
  console.log(`    hostile: invalid ${m.host_connects_invalid - m0.host_connects_invalid}, accepted ${m.host_connects_accepted - m0.host_connects_accepted}, conns added ${m.conns_added - m0.conns_added}, removed ${m.conns_removed - m0.conns_removed}`);
  assert.ok(m.host_connects_invalid - m0.host_connects_invalid >= 300, 'garbage and silent clients counted as invalid');
  assert.ok(m.conns_added - m0.conns_added >= REFUSED_CONNECTS + 1, 'every refused connect became a connection the guest reset');
  await until(settled, 120_000, () => `the refused connections to go; ${progress()}`);
  await until(() => openFds() === before, 60_000, () => `fds ${openFds()}, were ${before}`);
  assert.is(v.state, 'Running');
});

test('pause and resume: an open connection carries on, a new one is served', async () => {
  const { vm: v } = running();
  const open = await vsockConnect(uds, 5001, Buffer.from('before\n'), 120_000);
  await until(() => Buffer.concat(open.received).toString() === 'before\n', 120_000, () => `the first echo; ${progress()}`);
  await v.pause();
  open.socket.write('during\n'); // waits for the guest: the device worker runs, the vCPUs do not
  await new Promise((r) => setTimeout(r, 500));
  await v.resume();
  await until(() => Buffer.concat(open.received).toString() === 'before\nduring\n', 120_000, () => `the echo after resume; ${progress()}`);
  const fresh = await vsockConnect(uds, 5001, Buffer.from('after\n'), 120_000);
  await until(() => Buffer.concat(fresh.received).toString() === 'after\n', 120_000, () => `a new connection after resume; ${progress()}`);
  open.socket.destroy();
  fresh.socket.destroy();
});

test('the vsock metrics group; after the VM stops every fd it opened is closed', async () => {
  const { vm: v } = running();
  assert.ok(metrics.write());
  const file = readMetricsFile(metricsPath);
  const g = (f: string): number => file.total('vsock', f);
  console.log(`    vsock: rx_bytes_count ${g('rx_bytes_count')}, tx_bytes_count ${g('tx_bytes_count')}, conns_added ${g('conns_added')}, conns_removed ${g('conns_removed')}`);
  assert.ok(g('rx_bytes_count') >= EXCHANGE && g('tx_bytes_count') >= EXCHANGE, 'both directions counted');
  assert.ok(g('conns_added') >= ECHO_CONNS + REFUSED_CONNECTS);
  assert.not.ok(file.has('vsock', 'host_connects_invalid'), 'only Firecracker\'s fields in the file');
  hello!.sockets.forEach((s) => s.destroy()); // (b)'s connection, closed by the guest long ago
  stopping = true;
  const exit = await withTimeout(v.stop(), 120_000, () => `the VM did not stop: ${progress()}`);
  assert.is(exit.code, 0, exit.reason);
  await until(() => openFds() === fdsBeforeVm, 30_000, () => `fds ${openFds()}, were ${fdsBeforeVm} before the VM`);
});

test.run();
