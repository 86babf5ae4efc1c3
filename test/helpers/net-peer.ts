/**
 * The namespace side of the network KVM test (test/kvm/net.test.ts), run inside the test's
 * network namespace with `ip netns exec`: TCP services on the TAPs' host addresses, each
 * printing one result line on stdout.
 *
 *   node net-peer.js <addrA> <addrB> <scriptFile>
 *   A:5000  sends the guest's test script, then closes
 *   A:5001  receives UP_BYTES, prints `UP_SHA <sha256>`, closes
 *   A:5002  sends DOWN_BYTES of a seeded pseudo-random stream, prints `DOWN_SHA <sha256>`, closes
 *   A:5004  receives TIMED_BYTES, prints `TIMED A <ms>` (first to last byte), closes
 *   B:5003  the same on the second interface: `TIMED B <ms>`
 * Every service serves one connection, so the peer exits once the guest has used them all.
 */
import { createServer, type Socket } from 'node:net';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

export const UP_BYTES = 64 << 20;
export const DOWN_BYTES = 64 << 20;
export const TIMED_BYTES = 8 << 20;

/** One connection on addr:port, handled by `f`; the server closes after it. */
function once(addr: string, port: number, f: (s: Socket) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer((s) => {
      server.close();
      s.on('error', (e) => console.log(`PEER_ERROR ${port} ${e.message}`));
      f(s);
    });
    server.once('error', reject);
    server.listen(port, addr, () => resolve());
  });
}

/** Reads exactly `n` bytes, then closes; calls back with the hash and first-to-last-byte time. */
function receive(s: Socket, n: number, done: (sha: string, ms: number) => void): void {
  const h = createHash('sha256');
  let got = 0;
  let t0 = 0;
  s.on('data', (b: Buffer) => {
    if (got === 0) t0 = performance.now();
    const take = b.subarray(0, Math.max(0, n - got));
    h.update(take);
    got += take.length;
    if (got >= n) {
      done(h.digest('hex'), performance.now() - t0);
      s.end();
    }
  });
}

/** A seeded xorshift32 byte stream: reproducible, incompressible enough for a transfer test. */
function* stream(total: number, chunk = 1 << 16): Generator<Buffer> {
  let x = 0x9e3779b9;
  for (let sent = 0; sent < total; sent += chunk) {
    const b = Buffer.alloc(Math.min(chunk, total - sent));
    for (let i = 0; i + 4 <= b.length; i += 4) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      b.writeUInt32LE(x, i);
    }
    yield b;
  }
}

async function main(): Promise<void> {
  const [a, b, scriptFile] = process.argv.slice(2);
  if (!a || !b || !scriptFile) throw new Error('usage: net-peer <addrA> <addrB> <scriptFile>');
  const script = readFileSync(scriptFile);
  await once(a, 5000, (s) => s.end(script));
  await once(a, 5001, (s) => receive(s, UP_BYTES, (sha) => console.log(`UP_SHA ${sha}`)));
  await once(a, 5002, (s) => {
    const h = createHash('sha256');
    const chunks = stream(DOWN_BYTES);
    const pump = (): void => {
      for (let c = chunks.next(); !c.done; c = chunks.next()) {
        h.update(c.value);
        if (!s.write(c.value)) {
          s.once('drain', pump);
          return;
        }
      }
      s.end(() => console.log(`DOWN_SHA ${h.digest('hex')}`));
    };
    pump();
  });
  await once(a, 5004, (s) => receive(s, TIMED_BYTES, (_sha, ms) => console.log(`TIMED A ${Math.round(ms)}`)));
  await once(b, 5003, (s) => receive(s, TIMED_BYTES, (_sha, ms) => console.log(`TIMED B ${Math.round(ms)}`)));
  console.log('PEER_READY');
}

// Run as a program (`node net-peer.js …`); the test imports it only for the sizes.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: Error) => {
    console.log(`PEER_ERROR ${e.message}`);
    process.exit(1);
  });
}
