import { connect, createServer, type Server, type Socket } from 'node:net';

/*
 * A TCP proxy on 127.0.0.1 between the server and a real service (PostgreSQL), to take the service away and
 * give it back while the server runs:
 *   - cut('reset'): every open connection is destroyed and new ones are closed at once (the service stopped or
 *     restarted: the client sees its connections end and new ones fail);
 *   - cut('blackhole'): nothing is forwarded any more, in either direction, and new connections are held
 *     unanswered (a network partition: the client's queries hang);
 *   - restore(): new connections are forwarded again; after a blackhole, the held ones resume.
 */
export interface TcpProxy {
  port: number;
  /** `url` with its host and port replaced by the proxy's. */
  proxiedUrl(url: string): string;
  cut(mode?: 'reset' | 'blackhole'): void;
  restore(): void;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket | undefined;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let state: 'open' | 'reset' | 'blackhole' = 'open';
  const pairs = new Set<Pair>();

  function forward(pair: Pair): void {
    const upstream = connect(target.port, target.host);
    pair.upstream = upstream;
    pair.client.pipe(upstream).pipe(pair.client);
    // Either side ending or failing ends both, as a broken connection would.
    const end = () => {
      pair.client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    upstream.on('error', end).on('close', end);
    pair.client.on('close', end);
  }

  const server: Server = createServer((client) => {
    client.on('error', () => client.destroy());
    if (state === 'reset') {
      client.destroy();
      return;
    }
    const pair: Pair = { client, upstream: undefined };
    pairs.add(pair);
    if (state === 'open') forward(pair);
    else client.pause();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('proxy has no address');
  const port = address.port;

  return {
    port,
    proxiedUrl(url) {
      const proxied = new URL(url);
      proxied.hostname = '127.0.0.1';
      proxied.port = String(port);
      return proxied.toString();
    },
    cut(mode = 'reset') {
      state = mode;
      for (const pair of pairs) {
        if (mode === 'reset') {
          pair.client.destroy();
          pair.upstream?.destroy();
          pairs.delete(pair);
        } else {
          // Stop reading both ways: bytes stay in the kernel buffers, as on a link that drops packets.
          pair.client.unpipe();
          pair.upstream?.unpipe();
          pair.client.pause();
          pair.upstream?.pause();
        }
      }
    },
    restore() {
      const wasBlackhole = state === 'blackhole';
      state = 'open';
      if (!wasBlackhole) return;
      for (const pair of pairs) {
        if (pair.upstream) {
          pair.client.pipe(pair.upstream).pipe(pair.client);
          pair.client.resume();
          pair.upstream.resume();
        } else {
          forward(pair);
          pair.client.resume();
        }
      }
    },
    async close() {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream?.destroy();
      }
      pairs.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
