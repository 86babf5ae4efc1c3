/**
 * MMDS under real KVM (docs/design.md "MMDS"): the `kindling` binary runs in a network
 * namespace with one TAP, and the minimal-kernel guest reads its metadata at 169.254.169.254
 * with busybox's nc and wget, as cloud-init or an SDK would over HTTP.
 *
 *   VM 1, MMDS V2, data PUT before boot: the guest gets a token (PUT /latest/api/token), reads
 *   a nested key as IMDS text and, with `Accept: application/json`, as JSON; the same GET
 *   without a token gets 401; data PATCHed after boot reaches the guest.
 *   VM 2, MMDS V1, data from `--metadata` at start: a GET without a token works.
 *
 * tcpdump on the TAP, inside the namespace, sees the guest's ping to the namespace address
 * (the capture works) and not one frame to or about the MMDS address.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FirecrackerClient } from 'kindling/client';
import { fixture, testBootArgs } from '../helpers/guest.js';
import { NetNs, run, waitFor, type Proc } from '../helpers/netns.js';

const ns = new NetNs('kindling-mmds');
const HOST = '169.254.30.1';
const GUEST = '169.254.30.2';
const MMDS = '169.254.169.254';
/** The guest fetches its script from HOST:5000 (the kernel command line is too small for it). */
const GUEST_CMD = [
  'ip link set eth0 up', `ip addr add ${GUEST}/30 dev eth0`, `ip route add ${MMDS} dev eth0`,
  `ping -c 1 -W 10 ${HOST} >/dev/null && echo PING_OK`, `nc ${HOST} 5000 > /tmp/s`, 'sh /tmp/s',
].join('; ');

/** One raw HTTP exchange with the MMDS; nc half-closes after the request and the MMDS then closes. */
const RAW = (request: string): string => `printf '${request.replace(/\r\n/g, '\\r\\n')}' | timeout 20 nc ${MMDS} 80`;

const V2_SCRIPT = `
T=$(${RAW('PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 300\r\n\r\n')} | tail -n 1)
echo "TOKEN_LEN \${#T}"
echo "TEXT_BEGIN"; wget -q -O - --header "X-metadata-token: $T" http://${MMDS}/latest/meta-data/; echo; echo "TEXT_END"
echo "JSON $(wget -q -O - --header "X-metadata-token: $T" --header 'Accept: application/json' http://${MMDS}/latest/meta-data/)"
echo "NESTED $(wget -q -O - --header "X-metadata-token: $T" http://${MMDS}/latest/meta-data/tags/role)"
echo "NOTOKEN $(${RAW('GET /latest/meta-data/ HTTP/1.1\r\n\r\n')} | head -n 1)"
echo WAITING_PATCH
i=0; while [ $i -lt 60 ]; do
  v=$(wget -q -O - --header "X-metadata-token: $T" http://${MMDS}/latest/meta-data/patched 2>/dev/null)
  [ -n "$v" ] && break; sleep 1; i=$((i+1))
done
echo "PATCHED $v"
sleep 600
`;

const V1_SCRIPT = `
echo "V1_GET $(wget -q -O - http://${MMDS}/latest/meta-data/instance-id)"
`;

/** Serves `script` once on HOST:5000 inside the namespace. */
function serveScript(script: string): Proc {
  const js = `require('net').createServer(function (s) { this.close(); s.end(${JSON.stringify(script)}); }).listen(5000, '${HOST}', () => console.log('SERVING'))`;
  return run('ip', ns.exec(process.execPath, '-e', js));
}

/** Starts the VMM in the namespace and waits for its API socket. */
async function startVmm(dir: string, extra: string[] = []): Promise<{ vmm: Proc; api: FirecrackerClient; metrics: string }> {
  const sock = join(dir, 'api.sock');
  const metrics = join(dir, 'metrics.json');
  writeFileSync(metrics, '');
  const vmm = run('ip', ns.exec(process.execPath, resolve('bin/kindling.js'), '--api-sock', sock, '--id', 'mmds-test', '--metrics-path', metrics, ...extra));
  const deadline = Date.now() + 30_000;
  while (!existsSync(sock)) {
    if (Date.now() > deadline) throw new Error(`no API socket; output:\n${vmm.text()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { vmm, api: new FirecrackerClient(sock), metrics };
}

async function configure(api: FirecrackerClient): Promise<void> {
  await api.putBootSource({ kernel_image_path: fixture('vmlinux-6.1-mini'), initrd_path: fixture('guest-initrd.cpio.gz'), boot_args: testBootArgs(`"${GUEST_CMD}"`) });
  await api.putMachineConfig({ vcpu_count: 1, mem_size_mib: 256 });
  await api.putNetworkInterface({ iface_id: 'eth0', host_dev_name: 'tap0', guest_mac: '06:00:a9:fe:1e:02' });
}

let capture: Proc;

test.before(async () => {
  ns.create([['tap0', HOST]]);
  // Every frame on the TAP that is ICMP or mentions the MMDS address, one line each.
  capture = run('ip', ns.exec('tcpdump', '-i', 'tap0', '-n', '-l', '-p', `icmp or host ${MMDS} or (arp and arp[24:4] = 0xa9fea9fe)`));
  await waitFor(capture, /listening on tap0/, 30_000, 'tcpdump did not start');
});

test.after(() => {
  capture.child.kill();
  ns.remove();
});

test('MMDS V2: token, IMDS text and JSON, 401 without a token, a PATCH after boot; nothing on the TAP', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-mmds-'));
  const peer = serveScript(V2_SCRIPT);
  await waitFor(peer, /SERVING/, 30_000, 'the script server did not listen');
  const { vmm, api, metrics } = await startVmm(dir);
  try {
    await configure(api);
    await api.putMmds({ latest: { 'meta-data': { 'instance-id': 'i-kindling', tags: { role: 'test' } } } });
    await api.request('PUT', '/mmds/config', { version: 'V2', network_interfaces: ['eth0'] });
    await api.instanceStart();

    await waitFor(vmm, /PING_OK/, 180_000, 'the guest did not reach the namespace');
    const tokenLen = Number((await waitFor(vmm, /TOKEN_LEN (\d+)/, 120_000, 'no token'))[1]);
    assert.ok(tokenLen > 20 && tokenLen <= 70, `a token of ${tokenLen} characters`);
    const textBody = (await waitFor(vmm, /TEXT_BEGIN\r?\n([\s\S]*?)\r?\nTEXT_END/, 60_000, 'no IMDS text'))[1]!;
    assert.equal(textBody.split(/\r?\n/).filter(Boolean), ['instance-id', 'tags/'], 'keys one per line, sub-objects with /');
    const json = (await waitFor(vmm, /JSON ([^\n]*)\n/, 60_000, 'no JSON answer'))[1]!.trim();
    assert.equal(JSON.parse(json), { 'instance-id': 'i-kindling', tags: { role: 'test' } });
    assert.is((await waitFor(vmm, /NESTED ([^\n]*)\n/, 60_000, 'no nested value'))[1]!.trim(), 'test');
    assert.match((await waitFor(vmm, /NOTOKEN ([^\n]*)\n/, 60_000, 'no tokenless answer'))[1]!, /^HTTP\/1\.1 401/);

    await waitFor(vmm, /WAITING_PATCH/, 60_000, 'the guest did not get to the PATCH step');
    await api.request('PATCH', '/mmds', { latest: { 'meta-data': { patched: 'yes' } } });
    assert.is((await waitFor(vmm, /PATCHED ([^\n]*)\n/, 120_000, 'the PATCH never reached the guest'))[1]!.trim(), 'yes');

    // Counters are deltas per line: their sum over the file is the total.
    await api.request('PUT', '/actions', { action_type: 'FlushMetrics' });
    const lines = readFileSync(metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { mmds: Record<string, number> });
    const sum = (k: string): number => lines.reduce((n, l) => n + l.mmds[k]!, 0);
    console.log(`    mmds metrics: rx_accepted ${sum('rx_accepted')}, tx_frames ${sum('tx_frames')}, connections_created ${sum('connections_created')}, rx_no_token ${sum('rx_no_token')}`);
    assert.ok(sum('rx_accepted') > 10 && sum('tx_frames') > 10, 'the guest\'s MMDS frames are counted');
    assert.ok(sum('connections_created') >= 6, 'one TCP connection per request at least');
  } finally {
    vmm.child.kill('SIGKILL');
    peer.child.kill();
  }
  const lines = capture.text().split('\n');
  assert.ok(lines.some((l) => l.includes('ICMP echo request') && l.includes(GUEST)), `the capture saw the guest's ping:\n${capture.text().slice(-2000)}`);
  assert.equal(lines.filter((l) => l.includes(MMDS)), [], 'no MMDS frame on the TAP');
});

test('MMDS V1 with --metadata at start: a GET without a token works', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-mmds-'));
  const meta = join(dir, 'metadata.json');
  writeFileSync(meta, JSON.stringify({ latest: { 'meta-data': { 'instance-id': 'i-from-file' } } }));
  const peer = serveScript(V1_SCRIPT);
  await waitFor(peer, /SERVING/, 30_000, 'the script server did not listen');
  const { vmm, api } = await startVmm(dir, ['--metadata', meta]);
  try {
    await configure(api);
    await api.request('PUT', '/mmds/config', { version: 'V1', network_interfaces: ['eth0'] });
    await api.instanceStart();
    assert.is((await waitFor(vmm, /V1_GET ([^\n]*)\n/, 180_000, 'no V1 answer'))[1]!.trim(), 'i-from-file');
  } finally {
    vmm.child.kill('SIGKILL');
    peer.child.kill();
  }
  assert.equal(capture.text().split('\n').filter((l) => l.includes(MMDS)), [], 'no MMDS frame on the TAP');
});

test.run();
