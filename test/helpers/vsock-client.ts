/**
 * Host-side vsock clients for tests, as a user of Firecracker's vsock reaches a guest
 * (docs/vsock.md): connect to `uds_path`, send `CONNECT <port>\n`, read `OK <local_port>\n`,
 * then the stream is the connection. Plain node:net sockets.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { createHash } from 'node:crypto';

/** A host-initiated connection: the socket once `OK` arrived, and what followed it. */
export interface VsockClient {
  socket: Socket;
  /** The local port from `OK <port>`. */
  localPort: number;
  /** Bytes received after the OK line so far (the stream keeps filling `received`). */
  received: Buffer[];
  /** Resolves when the connection has closed. */
  closed: Promise<void>;
}

/**
 * Connects to `udsPath` and asks for guest port `port`; `first` is written right behind the
 * connect line (it is the connection's first data). Rejects when the connection closes before
 * `OK` (nobody listens in the guest) or after `ms`.
 */
export function vsockConnect(udsPath: string, port: number, first?: Buffer, ms = 60_000): Promise<VsockClient> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(udsPath);
    const received: Buffer[] = [];
    let head = Buffer.alloc(0);
    let ok = false;
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no OK for port ${port} within ${ms} ms`)); }, ms);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      if (!ok) reject(new Error(`closed before OK (port ${port}): ${JSON.stringify(head.toString('latin1'))}`));
    });
    socket.on('data', (b: Buffer) => {
      if (ok) {
        received.push(b);
        return;
      }
      head = Buffer.concat([head, b]);
      const nl = head.indexOf(0x0a);
      if (nl < 0) return;
      const m = /^OK (\d+)$/.exec(head.subarray(0, nl).toString('latin1'));
      if (!m) {
        socket.destroy();
        reject(new Error(`expected OK, got ${JSON.stringify(head.toString('latin1'))}`));
        return;
      }
      ok = true;
      clearTimeout(timer);
      if (head.length > nl + 1) received.push(head.subarray(nl + 1));
      resolve({ socket, localPort: Number(m[1]), received, closed });
    });
    socket.write(Buffer.concat([Buffer.from(`CONNECT ${port}\n`), first ?? Buffer.alloc(0)]));
  });
}

/** Total bytes of a chunk list. */
export const totalBytes = (chunks: readonly Buffer[]): number => chunks.reduce((n, c) => n + c.length, 0);

/** SHA-256 (hex) of the concatenated chunks. */
export function sha256(chunks: readonly Uint8Array[]): string {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest('hex');
}

/** Writes `data` in 64 KiB pieces, honouring back-pressure; resolves when all is handed to the kernel. */
export async function writeAll(socket: Socket, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length; at += 1 << 16) {
    if (!socket.write(data.subarray(at, Math.min(at + (1 << 16), data.length)))) {
      await new Promise<void>((r) => socket.once('drain', () => r()));
    }
  }
}

/** A host listener on `path` (a guest connects to `<uds_path>_<port>`) that records each connection's bytes. */
export async function vsockListener(path: string): Promise<{ server: Server; conns: Buffer[][]; sockets: Socket[] }> {
  const conns: Buffer[][] = [];
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    const chunks: Buffer[] = [];
    conns.push(chunks);
    sockets.push(s);
    s.on('data', (b: Buffer) => chunks.push(b));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(path, r));
  return { server, conns, sockets };
}
