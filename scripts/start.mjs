#!/usr/bin/env node
/**
 * `npm start`: boots the default microVM and attaches its serial console to this terminal.
 *
 * On a fresh clone it first does what `npm test` does to set up (Debian packages, npm ci,
 * build, guest fixtures). The default guest is Debian's stock kernel with the busybox
 * initramfs (1 vCPU, 256 MiB): a shell on the console; `reboot` in the guest ends the VM
 * and returns here. Where /dev/kvm is not usable (no VMX/SVM), the VMM runs inside the KVM
 * sandbox (QEMU TCG with nested SVM), and the sandbox's console is this terminal.
 *
 * Options: --mini (the minimal kernel: faster boot), --vcpus N, --mem MiB.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repo, setupAll, kvmUnusableReason, sandboxEnvScript, SetupError } from './setup.mjs';
import { cacheDir } from './fixtures.mjs';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const log = (m) => process.stderr.write(`npm start: ${m.replace(/^setup: /, '')}\n`);

let fixtures;
try {
  fixtures = setupAll(log);
} catch (e) {
  if (e instanceof SetupError) {
    log(e.message);
    process.exit(1);
  }
  throw e;
}

const mini = args.includes('--mini');
const config = {
  'boot-source': {
    kernel_image_path: join(fixtures, mini ? 'vmlinux-6.1-mini' : 'vmlinuz'),
    initrd_path: join(fixtures, 'guest-initrd.cpio.gz'),
    // Firecracker's defaults, with the serial console on and PCI probing off.
    boot_args: 'console=ttyS0 quiet reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd',
  },
  'machine-config': { vcpu_count: Number(opt('--vcpus', '1')), mem_size_mib: Number(opt('--mem', '256')) },
  drives: [],
};
const runs = join(cacheDir(), 'start');
mkdirSync(runs, { recursive: true });
const dir = mkdtempSync(join(runs, 'vm-'));
const cfgPath = join(dir, 'vm.json');
writeFileSync(cfgPath, JSON.stringify(config, null, 2));
const kindling = [process.execPath, join(repo, 'bin', 'kindling.js'), '--config-file', cfgPath, '--no-api', '--level', 'Warning'];

const why = kvmUnusableReason();
if (!why && process.env.KINDLING_SANDBOX !== 'always') {
  log('booting the default microVM (type `reboot` in the guest to leave)');
  const child = spawn(kindling[0], kindling.slice(1), { stdio: 'inherit' });
  child.on('exit', (code) => process.exit(code ?? 1));
} else {
  log(`${why || 'KINDLING_SANDBOX=always'}: starting the KVM sandbox first (QEMU TCG; the guest boot takes a minute or two there)`);
  log('type `reboot` in the guest to leave');
  const { runInSandbox } = await import('../dist/test/sandbox/sandbox.js');
  const script = `${sandboxEnvScript(fixtures)}\ncd '${repo}' || exit 97\nexec ${kindling.map((a) => `'${a}'`).join(' ')}`;
  try {
    const res = await runInSandbox({ fixtures, timeoutMs: 24 * 3600_000, interactive: true, script });
    process.exit(res.status);
  } catch (e) {
    log(e.message);
    process.exit(1);
  }
}
