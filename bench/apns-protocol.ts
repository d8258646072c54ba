/** Messages between the APNs benchmark (bench/apns.ts) and its child processes. */

export type ClientName = 'ours' | 'apns2' | '@parse/node-apn';

export interface Scenario {
  name: string;
  latencyMs: number;
  goawayAfterStreams: number | undefined;
  internalServerError: number;
  tooManyRequests: number;
}

export interface MockStart {
  type: 'start';
  publicKeyPem: string;
  keyId: string;
  teamId: string;
}

export type ToMock = MockStart | { type: 'configure'; scenario: Scenario } | { type: 'stats' };

export interface MockStats {
  /** Distinct push tokens the mock answered 200. */
  acked: number;
  /** All 200 answers (acked plus duplicates). */
  ok: number;
  /** Non-200 answers, by status. */
  errors: Record<string, number>;
  sessions: number;
  goaways: number;
  refused: number;
}

export type FromMock =
  | { type: 'ready'; origin: string; caPem: string }
  | { type: 'configured' }
  | { type: 'stats'; stats: MockStats };

export interface LoadJob {
  client: ClientName;
  origin: string;
  caPem: string;
  keyPem: string;
  keyId: string;
  teamId: string;
  topic: string;
  count: number;
  /** Ours only: retry `retry` outcomes with backoff until delivered (as the push worker does). */
  retry: boolean;
}

export interface LoadResult {
  wallMs: number;
  /** Pushes the client reported as sent (resolved without error). */
  reportedOk: number;
  /** Ours only: resends after a `retry` outcome. */
  resends: number;
  /** Failures the client reported, by reason. */
  failures: Record<string, number>;
}
