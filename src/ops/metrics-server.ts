import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ConnectionLimits } from '../config.js';
import type { Logger } from '../logger.js';
import type { Metrics } from './metrics.js';

/*
 * METRICS_PORT: /metrics alone on its own port, so it can stay inside the cluster while PORT faces Wallet.
 * Plain node:http: one route needs no framework, and it keeps answering even if the main app is busy.
 */
export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

export async function startMetricsServer(options: {
  metrics: Metrics;
  port: number;
  host: string;
  log: Logger;
  /** The main port's timeouts and connection cap (HTTP_*): a slow or idle client is cut off here too. */
  connections: ConnectionLimits;
}): Promise<MetricsServer> {
  const { connections } = options;
  const serverOptions = {
    requestTimeout: connections.requestTimeoutMs,
    headersTimeout: connections.headersTimeoutMs,
    keepAliveTimeout: connections.keepAliveTimeoutMs,
    // As the main port (src/app.ts): look for overdue requests often enough that none overstays by much.
    connectionsCheckingInterval: connections.headersTimeoutMs / 4,
  };
  const server: Server = createServer(serverOptions, (request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not found\n');
      return;
    }
    options.metrics.scrape().then(
      (text) => {
        response.writeHead(200, { 'content-type': options.metrics.contentType });
        response.end(request.method === 'HEAD' ? undefined : text);
      },
      (error: unknown) => {
        options.log.error({ err: error }, 'metrics: scrape failed');
        response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('Scrape failed\n');
      },
    );
  });
  server.maxConnections = connections.maxConnections;
  // Idle sockets (no request, or a request that stalls mid-body) are closed as on the main port.
  server.setTimeout(connections.idleTimeoutMs, (socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // Scrapers keep connections alive; they must not hold up the shutdown.
        server.closeIdleConnections();
      }),
  };
}
