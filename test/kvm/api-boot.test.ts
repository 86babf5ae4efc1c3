/**
 * The Firecracker-compatible binary, tried as a new user would, under real KVM:
 *  - `kindling --api-sock <path>`: PUT /boot-source, PUT /machine-config, PUT /actions
 *    InstanceStart through the undici client; the guest marker shows on the process's serial
 *    console (stdout); GET / says Running; 20 GET / requests spread over the boot are all
 *    answered (the slowest is printed); the guest's reboot ends the process with exit code 0;
 *  - `kindling --config-file vm.json --no-api` boots the same guest and exits 0.
 * Both use the minimal kernel (the fastest boot in the nested sandbox).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FirecrackerClient } from 'kindling/client';
import { fixture, testBootArgs, withTimeout } from '../helpers/guest.js';

const BIN = resolve('bin/kindling.js');
// The marker is computed by the guest shell, so the logged request body (which holds the
// command text) cannot match it.
const GUEST_CMD = '"echo API_GUEST_$((40+2)); sleep 10"';
const MARKER = 'API_GUEST_42';

interface Proc { child: ChildProcess; out: { text: string }; exit: Promise<number | null> }

function startKindling(args: string[]): Proc {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { text: '' };
  child.stdout!.on('data', (b: Buffer) => { out.text += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { out.text += b.toString(); });
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, out, exit };
}

async function waitUntil(cond: () => boolean, ms: number, what: string, out: { text: string }): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what} within ${ms / 1000} s; output so far:\n${out.text.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('kindling --api-sock: configure, InstanceStart, console marker, GET / Running, API answers throughout', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-api-'));
  const sock = join(dir, 'api.sock');
  const p = startKindling(['--api-sock', sock, '--id', 'api-test']);
  try {
    await waitUntil(() => existsSync(sock), 30_000, 'the API socket did not appear', p.out);
    const api = new FirecrackerClient(sock);
    assert.equal(await api.getInstanceInfo(), { id: 'api-test', state: 'Not started', vmm_version: '1.16.1', app_name: 'Firecracker' });
    await api.putBootSource({ kernel_image_path: fixture('vmlinux-6.1-mini'), initrd_path: fixture('guest-initrd.cpio.gz'), boot_args: testBootArgs(GUEST_CMD) });
    await api.putMachineConfig({ vcpu_count: 1, mem_size_mib: 128 });
    const t0 = performance.now();
    await api.instanceStart();
    assert.is((await api.getInstanceInfo()).state, 'Running');
    // 20 GET / spread over the boot (every 250 ms; the guest keeps running 10 s after its
    // marker so none lands after the VM is gone): the API must never wait on a vCPU.
    const lat: number[] = [];
    for (let i = 0; i < 20; i++) {
      const s = performance.now();
      const info = await api.getInstanceInfo();
      lat.push(performance.now() - s);
      assert.is(info.state, 'Running');
      await new Promise((r) => setTimeout(r, 250));
    }
    await waitUntil(() => p.out.text.includes(MARKER), 240_000, 'the guest marker did not appear on the console', p.out);
    console.log(`\n    API boot: marker after ${((performance.now() - t0) / 1000).toFixed(1)} s; ${lat.length} GET / during boot, slowest ${Math.max(...lat).toFixed(1)} ms`);
    assert.is(lat.length, 20);
    await api.close();
    assert.is(await p.exit, 0, 'the guest reboot ends the process with 0');
  } finally {
    p.child.kill('SIGKILL');
  }
});

test('kindling --config-file --no-api boots the same guest and exits 0', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-cfg-'));
  const cfg = join(dir, 'vm.json');
  writeFileSync(cfg, JSON.stringify({
    'boot-source': { kernel_image_path: fixture('vmlinux-6.1-mini'), initrd_path: fixture('guest-initrd.cpio.gz'), boot_args: testBootArgs(GUEST_CMD) },
    'machine-config': { vcpu_count: 1, mem_size_mib: 128 },
    drives: [],
  }));
  const p = startKindling(['--config-file', cfg, '--no-api']);
  try {
    const code = await withTimeout(p.exit, 240_000, () => `no exit; output:\n${p.out.text.slice(-2000)}`);
    assert.ok(p.out.text.includes(MARKER), p.out.text.slice(-2000));
    assert.is(code, 0);
  } finally {
    p.child.kill('SIGKILL');
  }
});

test.run();
