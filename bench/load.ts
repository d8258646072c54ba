/**
 * A small HTTP/1.1 load generator for the serving and device-endpoint benches (autocannon is not a dependency).
 * `runLoad()` forks this file as a child process, so the load's CPU is not the measured server's event loop.
 * Each of `connections` keep-alive sockets sends one request at a time (no pipelining) and sends the next as soon
 * as the answer is complete; requests are taken round-robin from a list. Answers are framed by Content-Length
 * (or have no body: 204, 304); a chunked answer counts as an error. Latency is measured per request, from
 * writing it to its last byte.
 */
import { fork } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

export interface LoadRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface LoadOptions {
  port: number;
  host?: string;
  connections: number;
  /** Not counted: connections are opened and the server warms up. */
  warmupMs: number;
  durationMs: number;
  requests: LoadRequest[];
}

export interface LoadResult {
  /** Requests completed in the measured window. */
  completed: number;
  /** Requests completed from the first connection to the last answer, warm-up included (for CPU per request). */
  completedInAll: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Answers by status code in the measured window. */
  statuses: Record<string, number>;
  errors: number;
  /** Megabytes per second received (headers and bodies). */
  megabytesPerSecond: number;
}

function encode(request: LoadRequest, host: string): Buffer {
  const body = request.body ?? '';
  const lines = [`${request.method} ${request.path} HTTP/1.1`, `host: ${host}`, 'connection: keep-alive'];
  for (const [name, value] of Object.entries(request.headers ?? {})) lines.push(`${name}: ${value}`);
  if (body || request.method === 'POST') lines.push(`content-length: ${Buffer.byteLength(body)}`);
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body}`);
}

const headerEnd = Buffer.from('\r\n\r\n');

async function generate(options: LoadOptions): Promise<LoadResult> {
  const host = options.host ?? '127.0.0.1';
  const encoded = options.requests.map((request) => encode(request, `${host}:${options.port}`));
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let errors = 0;
  let bytes = 0;
  let measuring = false;
  let stopping = false;
  let next = 0;
  let completedInAll = 0;

  const runConnection = (index: number) =>
    new Promise<void>((resolve) => {
      let socket: Socket;
      let head: Buffer | undefined;
      let bodyLeft = -1;
      let status = 0;
      let started = 0;
      let counted = false;
      const send = () => {
        if (stopping) {
          socket.end();
          resolve();
          return;
        }
        const request = encoded[(next++ + index) % encoded.length];
        if (!request) throw new Error('no requests');
        head = undefined;
        bodyLeft = -1;
        counted = measuring;
        started = performance.now();
        socket.write(request);
      };
      const done = () => {
        completedInAll++;
        if (counted && measuring) {
          latencies.push(performance.now() - started);
          statuses[status] = (statuses[status] ?? 0) + 1;
        }
        send();
      };
      const reconnect = () => {
        socket = connect({ port: options.port, host, noDelay: true });
        socket.on('connect', send);
        socket.on('data', (chunk: Buffer) => {
          if (counted && measuring) bytes += chunk.length;
          if (bodyLeft < 0) {
            head = head ? Buffer.concat([head, chunk]) : chunk;
            const end = head.indexOf(headerEnd);
            if (end < 0) return;
            const text = head.subarray(0, end).toString('latin1');
            status = Number(text.slice(9, 12));
            const length = /\r\ncontent-length:\s*(\d+)/i.exec(text);
            if (!length) {
              if (status !== 204 && status !== 304) {
                errors++;
                socket.destroy();
                return;
              }
              bodyLeft = 0;
            } else bodyLeft = Number(length[1]);
            bodyLeft -= head.length - end - 4;
          } else bodyLeft -= chunk.length;
          if (bodyLeft <= 0) done();
        });
        socket.on('error', () => {
          errors++;
        });
        socket.on('close', () => {
          if (stopping) resolve();
          else reconnect();
        });
      };
      reconnect();
    });

  const all = Array.from({ length: options.connections }, (_, index) => runConnection(index));
  await new Promise((resolve) => setTimeout(resolve, options.warmupMs));
  measuring = true;
  const startedAt = performance.now();
  await new Promise((resolve) => setTimeout(resolve, options.durationMs));
  measuring = false;
  const seconds = (performance.now() - startedAt) / 1000;
  stopping = true;
  await Promise.all(all);
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return {
    completed: latencies.length,
    completedInAll,
    requestsPerSecond: latencies.length / seconds,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    statuses,
    errors,
    megabytesPerSecond: bytes / seconds / 1e6,
  };
}

/** Runs the load in a child process (this file, forked with the same loader) and returns its figures. */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), ['--load-child'], { stdio: 'inherit' });
    child.once('message', (message) => {
      resolve(message as LoadResult);
      child.disconnect();
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`load generator exited with ${code}`));
    });
    child.send(options);
  });
}

if (process.argv.includes('--load-child')) {
  process.once('message', (options) => {
    generate(options as LoadOptions).then(
      (result) => process.send?.(result, () => process.exit(0)),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  });
}
