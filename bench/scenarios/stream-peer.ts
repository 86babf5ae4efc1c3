/**
 * The host end of the throughput scenarios (net.ts over TCP, vsock.ts over Unix sockets): a
 * sink that swallows what the guest sends and a source that sends the guest `bytes`, then
 * ends. Every socket is tracked, because connections to a guest that was killed never close
 * by themselves and would keep the bench process alive; the caller destroys them after a run.
 */
import { createServer, type Server, type Socket } from 'node:net';

/** The two servers, not yet listening; listen on `[sink, source]` with `listenOn`. */
export function streamServers(bytes: number, sockets: Set<Socket>): [Server, Server] {
  const track = (s: Socket): void => { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => undefined); };
  const sink = createServer((s) => { track(s); s.on('data', () => undefined); });
  const source = createServer((s) => {
    track(s);
    const chunk = Buffer.alloc(1 << 16);
    let left = bytes;
    const pump = (): void => {
      while (left > 0) {
        left -= chunk.length;
        if (!s.write(chunk)) { s.once('drain', pump); return; }
      }
      s.end();
    };
    pump();
  });
  return [sink, source];
}

/** Starts each server listening on its address (`server.listen` arguments); resolves when all are. */
export function listenOn(servers: Server[], addresses: (readonly [number, string] | string)[]): Promise<Server[]> {
  return Promise.all(servers.map((srv, i) => new Promise<Server>((resolve, reject) => {
    srv.once('error', reject);
    const a = addresses[i]!;
    if (typeof a === 'string') srv.listen(a, () => resolve(srv));
    else srv.listen(a[0], a[1], () => resolve(srv));
  })));
}
