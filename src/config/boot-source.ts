/**
 * PUT /boot-source (src/vmm/src/vmm_config/boot_source.rs): the body, the file checks
 * Firecracker does at PUT time (kernel and initrd are opened), the kernel command line split
 * and size check linux-loader's `Cmdline::try_from` applies (2048 bytes including the NUL), and
 * the reads of both files at InstanceStart.
 */
import { closeSync, openSync, readFileSync } from 'node:fs';
import { CMDLINE_MAX_SIZE } from '../arch/x86_64/layout.js';
import { InitrdError, KernelLoaderError } from '../errors.js';
import { ConfigError, ioErrorText } from './errors.js';
import { Desc, deserialize, field, opt, str, struct } from './serde.js';

/**
 * Firecracker's default guest command line, used only when `boot_args` is absent:
 * no serial console (`8250.nr_uarts=0`), reboot on panic, i8042 probing trimmed.
 */
export const DEFAULT_KERNEL_CMDLINE =
  'reboot=k panic=1 nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.dumbkbd swiotlb=noforce';


/** Separator between kernel boot args and init args (linux-loader INIT_ARGS_SEPARATOR). */
export const INIT_ARGS_SEPARATOR = ' -- ';

/** The PUT /boot-source body. */
export interface BootSourceConfig {
  kernel_image_path: string;
  initrd_path: string | null;
  boot_args: string | null;
}

/** serde description of `BootSourceConfig` (deny_unknown_fields). */
export const BOOT_SOURCE: Desc = struct('BootSourceConfig', [
  field('kernel_image_path', str),
  field('initrd_path', opt(str)),
  field('boot_args', opt(str)),
]);


/**
 * A command line split the way linux-loader does: the part before the first ` -- ` that is not
 * inside double quotes is the kernel's, the rest goes to init; both trimmed. The VM builder
 * appends `virtio_mmio.device=`, `root=` and `pci=off` to `boot_args`.
 */
export interface KernelCmdline {
  boot_args: string;
  init_args: string;
}

/** A validated boot source: the config as given plus the effective command line. */
export interface BootSource {
  config: BootSourceConfig;
  cmdline: KernelCmdline;
}

/** Deserializes a PUT /boot-source body (serde errors as Firecracker words them). */
export function parseBootSource(body: Uint8Array | string): BootSourceConfig {
  return deserialize<BootSourceConfig>(body, BOOT_SOURCE);
}

function quotesBalanced(s: string): boolean {
  let n = 0;
  for (const ch of s) if (ch === '"') n++;
  return n % 2 === 0;
}

/** Rust's `str::trim` (Unicode White_Space; unlike JS `trim` it keeps U+FEFF). */
function rustTrim(s: string): string {
  return s.replace(RUST_WS_EDGES, '');
}
const RUST_WS = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const RUST_WS_EDGES = new RegExp(`^[${RUST_WS}]+|[${RUST_WS}]+$`, 'g');

/**
 * linux-loader `Cmdline::try_from(raw, 2048)`: splits boot/init args and checks the size. It does
 * NOT check characters; too long → "Invalid cmdline capacity provided." (sic, not TooLarge).
 */
export function parseKernelCmdline(raw: string, capacity = CMDLINE_MAX_SIZE): KernelCmdline {
  let boot = raw;
  let init = '';
  for (let at = raw.indexOf(INIT_ARGS_SEPARATOR); at !== -1; at = raw.indexOf(INIT_ARGS_SEPARATOR, at + INIT_ARGS_SEPARATOR.length)) {
    if (quotesBalanced(raw.slice(0, at))) {
      boot = raw.slice(0, at);
      init = raw.slice(at + INIT_ARGS_SEPARATOR.length);
      break;
    }
  }
  boot = rustTrim(boot);
  init = rustTrim(init);
  let size = Buffer.byteLength(boot) + 1;
  if (init.length > 0) size += INIT_ARGS_SEPARATOR.length + Buffer.byteLength(init);
  if (size > capacity) {
    throw new ConfigError('boot-source', 'The kernel command line is invalid: Invalid cmdline capacity provided.');
  }
  return { boot_args: boot, init_args: init };
}

/** The full command line string (`boot -- init`), as written to guest memory minus the NUL. */
export function cmdlineString(c: KernelCmdline): string {
  return c.init_args ? `${c.boot_args}${INIT_ARGS_SEPARATOR}${c.init_args}` : c.boot_args;
}

function checkOpen(path: string): void {
  closeSync(openSync(path, 'r'));
}

/**
 * `BootConfig::new`: opens the kernel and initrd (readability is checked at PUT time) and
 * validates the command line (default when `boot_args` is absent).
 */
export function buildBootSource(cfg: BootSourceConfig): BootSource {
  try {
    checkOpen(cfg.kernel_image_path);
  } catch (e) {
    throw new ConfigError('boot-source', `The kernel file cannot be opened: ${ioErrorText(e)}`, { cause: e });
  }
  if (cfg.initrd_path !== null) {
    try {
      checkOpen(cfg.initrd_path);
    } catch (e) {
      throw new ConfigError(
        'boot-source',
        `The initrd file cannot be opened due to invalid path or invalid permissions. ${ioErrorText(e)}`,
        { cause: e },
      );
    }
  }
  const cmdline = parseKernelCmdline(cfg.boot_args ?? DEFAULT_KERNEL_CMDLINE);
  return { config: { ...cfg }, cmdline };
}

/**
 * Reads the kernel at InstanceStart. Firecracker opened it at PUT (`File::open` succeeds on a
 * directory) and reads that file when it loads the kernel: x86_64 loads ELF only, and a read
 * that fails is linux-loader's `Elf::load` ReadElfHeader, wrapped by `load_kernel`
 * (src/vmm/src/arch/x86_64/mod.rs) and `StartMicrovmError::ConfigureSystem`.
 */
export function readKernelImage(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new KernelLoaderError(
      'KERNEL_LOAD_READ',
      'System configuration error: Cannot load kernel due to invalid memory configuration or invalid kernel image: Kernel Loader: failed to load ELF kernel image: Unable to read elf header',
      { cause: e },
    );
  }
}

/**
 * Reads the initrd at InstanceStart: a read that fails is `InitrdError::Read` around the
 * io::Error (src/vmm/src/initrd.rs), wrapped by `StartMicrovmError::Initrd` ("...: {0}.").
 */
export function readInitrdImage(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new InitrdError('INITRD_READ', `Error with initrd initialization: Cannot load initrd due to an invalid image: ${ioErrorText(e)}.`, { cause: e });
  }
}
