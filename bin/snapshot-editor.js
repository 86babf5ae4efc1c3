#!/usr/bin/env node
// Kindling's `snapshot-editor` (Firecracker's snapshot tool, `edit-memory rebase` only) from the
// build in dist/: src/cli/snapshot-editor.ts parses the command line and sets the exit code.
import { runSnapshotEditor } from '../dist/src/cli/snapshot-editor.js';

process.exitCode = runSnapshotEditor(process.argv.slice(2), {
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
});
