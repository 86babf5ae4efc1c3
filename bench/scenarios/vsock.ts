/**
 * Scenario 7, **Vsock**: stream throughput over virtio-vsock, guest → host and host → guest.
 *
 * Each run boots the minimal kernel (virtio-vsock built in) with the socat initramfs
 * (guest-vsock-initrd) and one vsock device, guest CID 3. The guest opens both connections
 * to the host (CID 2) and times them with its /proc/uptime, so both VMMs run the very same
 * guest command:
 *
 *   head -c N /dev/zero | socat -u - VSOCK-CONNECT:2:6001     (guest → host)
 *   socat -u VSOCK-CONNECT:2:6002 - > /dev/null               (host → guest)
 *
 * and reports `BENCH_VSOCK <t0> <t1> <t2>`. The host side:
 *   Kindling: Firecracker's Unix-socket backend: listeners on `<uds_path>_6001` (a sink) and
 *             `<uds_path>_6002` (sends N bytes, then closes), in this process;
 *   QEMU:     `vhost-vsock-device` (the kernel's vhost backend; QEMU only sets it up), whose
 *             host side is AF_VSOCK: two host socats, `VSOCK-LISTEN:6001` into /dev/null and
 *             `VSOCK-LISTEN:6002` from `head -c N /dev/zero`. It needs /dev/vhost-vsock
 *             (vhost_vsock, loaded in the sandbox); where it cannot start, its runs fail with
 *             QEMU's own message and Kindling is reported alone.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { listenOn, streamServers } from './stream-peer.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Watched } from './process.js';
import { bootOnce, type RunContext, type VmSpec } from './vm-run.js';
import type { ResultsCollector, RunRecord } from '../results.js';

/** Stream size per direction (KINDLING_BENCH_VSOCK_MIB overrides). */
const STREAM_MIB = Number(process.env.KINDLING_BENCH_VSOCK_MIB ?? 64);
const GUEST_CID = 3;
const SINK_PORT = 6001;
const SOURCE_PORT = 6002;
const GUEST_CMD = `"read a x </proc/uptime; head -c ${STREAM_MIB << 20} /dev/zero | socat -u - VSOCK-CONNECT:2:${SINK_PORT}; read b x </proc/uptime; `
  + `socat -u VSOCK-CONNECT:2:${SOURCE_PORT} - >/dev/null; read c x </proc/uptime; echo BENCH_VSOCK $a $b $c"`;

/** Declares the vsock metrics. */
export function defineVsockMetrics(c: ResultsCollector): void {
  c.define({ id: 'vsock.tx', scenario: 'Vsock', label: `vsock guest → host, ${STREAM_MIB} MiB`, unit: 'MiB/s', better: 'higher', note: `guest \`head -c ${STREAM_MIB}M /dev/zero | socat -u - VSOCK-CONNECT:2:${SINK_PORT}\`, timed with the guest's /proc/uptime. QEMU: vhost-vsock-device (in-kernel backend).` });
  c.define({ id: 'vsock.rx', scenario: 'Vsock', label: `vsock host → guest, ${STREAM_MIB} MiB`, unit: 'MiB/s', better: 'higher', note: 'the host sends the same amount on a second guest-initiated connection; the guest\'s socat writes it to /dev/null.' });
}

/** MiB/s each way from the guest's `BENCH_VSOCK t0 t1 t2` line. */
export function vsockRates(consoleText: string, mib = STREAM_MIB): { tx?: number; rx?: number } {
  const m = /BENCH_VSOCK ([0-9.]+) ([0-9.]+) ([0-9.]+)\s*\n/.exec(consoleText);
  if (!m) return {};
  const [t0, t1, t2] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const rate = (secs: number): number | undefined => (secs > 0 ? mib / secs : undefined);
  return { tx: rate(t1 - t0), rx: rate(t2 - t1) };
}

/** Kindling's host side: Unix listeners for the guest's two connections. */
function unixPeer(udsPath: string, sockets: Set<Socket>): Promise<Server[]> {
  return listenOn(streamServers(STREAM_MIB << 20, sockets), [`${udsPath}_${SINK_PORT}`, `${udsPath}_${SOURCE_PORT}`]);
}

/** QEMU's host side: AF_VSOCK listeners (host socat; Node has no AF_VSOCK). */
function vsockPeer(): Watched[] {
  return [
    new Watched('socat', ['-u', `VSOCK-LISTEN:${SINK_PORT}`, 'OPEN:/dev/null,wronly']),
    new Watched('socat', ['-u', `EXEC:head -c ${STREAM_MIB << 20} /dev/zero`, `VSOCK-LISTEN:${SOURCE_PORT}`]),
  ];
}

/** Runs the vsock rounds (Kindling then QEMU in each). */
export async function runVsock(c: ResultsCollector, base: VmSpec, initrd: string, ctx: RunContext, rounds: number, log: (m: string) => void): Promise<void> {
  const args = base.bootArgs.replace(/ -- kindling-run .*$/, '');
  for (let round = 0; round < rounds; round++) {
    for (const side of ['kindling', 'qemu'] as const) {
      const run: RunRecord = { scenario: 'vsock', variant: 'mini-1vcpu-vsock', side, round, warmup: false, ok: false, startedAt: new Date().toISOString(), data: {} };
      c.runs.push(run);
      const dir = mkdtempSync(join(tmpdir(), 'kindling-bench-vsock-'));
      const spec: VmSpec = { ...base, initrd, memMiB: 256, bootArgs: `${args} -- kindling-run ${GUEST_CMD}`, vsock: { guestCid: GUEST_CID, udsPath: join(dir, 'v.sock') } };
      let servers: Server[] = [];
      let peers: Watched[] = [];
      const sockets = new Set<Socket>();
      try {
        if (side === 'kindling') servers = await unixPeer(spec.vsock!.udsPath, sockets);
        else peers = vsockPeer();
        const s = await bootOnce(side, spec, ctx, /BENCH_VSOCK [0-9.]+ [0-9.]+ [0-9.]+\s*\n/);
        const { tx, rx } = vsockRates(s.console);
        run.data = { txMiBs: tx, rxMiBs: rx, console: s.console.slice(0, 2000) };
        if (tx === undefined || rx === undefined) throw new Error(`no BENCH_VSOCK timing line: ${s.console.slice(0, 400)}`);
        run.ok = true;
        c.add('vsock.tx', side, tx);
        c.add('vsock.rx', side, rx);
        log(`vsock ${side} round ${round + 1}/${rounds}: guest→host ${tx.toFixed(1)} MiB/s, host→guest ${rx.toFixed(1)} MiB/s`);
      } catch (e) {
        const peerErr = peers.map((p) => p.stderr.trim()).filter(Boolean).join('; ');
        run.error = `${(e as Error).message}${peerErr ? ` (host socat: ${peerErr})` : ''}`;
        log(`vsock ${side} round ${round + 1} FAILED: ${run.error}`);
      } finally {
        sockets.forEach((so) => so.destroy());
        servers.forEach((srv) => srv.close());
        await Promise.all(peers.map((p) => p.kill()));
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
}
