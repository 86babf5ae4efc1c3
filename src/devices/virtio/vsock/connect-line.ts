/**
 * The host's connect command (Firecracker docs/vsock.md, "Host-Initiated Connections"): a
 * client connects to `uds_path` and sends `CONNECT <port>\n`, then the stream is the
 * connection. Parsed as Firecracker's `read_local_stream_port` does
 * (devices/virtio/vsock/unix/muxer.rs):
 *
 * - the line is at least CONNECT_LINE_MIN (10) bytes: a newline among the first ten is part of
 *   it, the first newline at or after the tenth byte ends it; with no newline the line is the
 *   first CONNECT_LINE_MAX (32) bytes;
 * - it must be UTF-8; split on whitespace, the first word is `connect` in any case and the
 *   second a u32 in Rust's `u32::from_str` syntax (decimal digits, an optional leading `+`);
 *   anything after the second word is ignored.
 *
 * Nothing after the line is read: bytes the client sent behind it are the connection's first
 * data. `lineEnd` finds where the line ends in what has arrived so far, so the reader can take
 * exactly the line off the socket (the rest stays queued for the connection).
 */
import { CONNECT_LINE_MAX, CONNECT_LINE_MIN } from './constants.js';

const NEWLINE = 0x0a;
/** Largest u32. */
const U32_MAX = 2 ** 32 - 1;
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * How many bytes of `buf` (the first bytes the client sent) form the connect line: the count,
 * or 0 when the line is not complete yet (`buf` shorter than the line can be).
 */
export function lineEnd(buf: Uint8Array): number {
  const n = Math.min(buf.length, CONNECT_LINE_MAX);
  for (let i = CONNECT_LINE_MIN - 1; i < n; i++) if (buf[i] === NEWLINE) return i + 1;
  return n === CONNECT_LINE_MAX ? CONNECT_LINE_MAX : 0;
}

/** The port a complete connect line asks for, or null when the line is not a valid command. */
export function parseConnectLine(line: Uint8Array): number | null {
  if (line.length < CONNECT_LINE_MIN || line.length > CONNECT_LINE_MAX) return null;
  let text: string;
  try {
    text = decoder.decode(line);
  } catch {
    return null; // not UTF-8
  }
  // Rust's split_whitespace: Unicode White_Space, as JS \s (which adds only U+FEFF).
  const words = text.split(/\s+/).filter((w) => w.length > 0);
  if (words.length < 2 || words[0]!.toLowerCase() !== 'connect') return null;
  const m = /^\+?([0-9]+)$/.exec(words[1]!);
  if (!m) return null;
  const port = Number(m[1]);
  return port <= U32_MAX ? port : null;
}
