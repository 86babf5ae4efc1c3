/**
 * Work the binaries wait for (bounded) before process.exit, registered by the modules that
 * need it once they are loaded. A registry rather than an import: the CLI's startup snapshot
 * must not pull those modules into its static graph (src/cli/exit.ts).
 */
const hooks = new Set<() => Promise<void>>();

/** Adds `hook` (once; registering it again changes nothing). */
export function onBeforeExit(hook: () => Promise<void>): void {
  hooks.add(hook);
}

/** Runs every hook; resolves when all settled or after `ms`, whichever is first. */
export async function runExitHooks(ms: number): Promise<void> {
  if (hooks.size === 0) return;
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<void>((r) => { timer = setTimeout(r, ms); });
  await Promise.race([Promise.allSettled([...hooks].map((h) => h())), bound]);
  clearTimeout(timer);
}
