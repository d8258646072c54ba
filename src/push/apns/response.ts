/**
 * The one place that turns an APNs answer into what the push worker does next.
 * Reasons and statuses: Apple, "Handling notification responses from APNs".
 */
export type ApnsOutcome =
  /** 200: APNs accepted the notification. */
  | { kind: 'delivered'; apnsId?: string }
  /** The push token is no longer valid for this pass type: remove its registrations. */
  | { kind: 'unregistered'; reason: string; unregisteredAt?: Date }
  /** Temporary: try again later, with backoff (the worker decides when). */
  | { kind: 'retry'; reason: string; retryAfterMs?: number }
  /** The provider token expired: renew it and resend (the client does this once itself). */
  | { kind: 'renew-token'; reason: string }
  /** Anything else: record it and stop; resending the same request would get the same answer. */
  | { kind: 'failed'; reason: string };

/** 400 reasons that mean the token itself is useless for this topic (Apple: "don't retry"). */
const UNUSABLE_TOKEN_REASONS: ReadonlySet<string> = new Set(['BadDeviceToken', 'DeviceTokenNotForTopic']);

interface ErrorBody {
  reason?: string;
  timestamp?: number;
}

/** APNs error bodies are `{"reason": "...", "timestamp": ms}`; anything unparsable yields no fields. */
function parseErrorBody(body: string): ErrorBody {
  if (body.length === 0) return {};
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed !== 'object' || parsed === null) return {};
    const { reason, timestamp } = parsed as Record<string, unknown>;
    return {
      reason: typeof reason === 'string' ? reason : undefined,
      timestamp: typeof timestamp === 'number' && Number.isFinite(timestamp) ? timestamp : undefined,
    };
  } catch {
    return {};
  }
}

function unregistered(reason: string, timestamp: number | undefined): ApnsOutcome {
  // Apple: for 410, "timestamp" is the time (ms since epoch) at which APNs confirmed the token was no
  // longer valid for the topic.
  return timestamp === undefined
    ? { kind: 'unregistered', reason }
    : { kind: 'unregistered', reason, unregisteredAt: new Date(timestamp) };
}

/**
 * Maps an APNs HTTP status and response body to an action. `apnsId` is the `apns-id` response header.
 */
export function classifyApnsResponse(status: number, body: string, apnsId?: string): ApnsOutcome {
  if (status === 200) return apnsId === undefined ? { kind: 'delivered' } : { kind: 'delivered', apnsId };
  const { reason: given, timestamp } = parseErrorBody(body);
  const reason = given ?? `HTTP ${status}`;

  // 410 Unregistered / ExpiredToken: "The device token is no longer active for the topic."
  if (status === 410) return unregistered(reason, timestamp);
  // 400 BadDeviceToken / DeviceTokenNotForTopic: Apple says not to retry; the token will never work here.
  if (status === 400 && UNUSABLE_TOKEN_REASONS.has(reason)) return unregistered(reason, undefined);
  // 400 IdleTimeout is about the connection, not the request.
  if (status === 400 && reason === 'IdleTimeout') return { kind: 'retry', reason };
  // 403 ExpiredProviderToken: "The provider token is stale and a new token should be generated."
  // InvalidProviderToken / MissingProviderToken are configuration errors (wrong key, key id or team id):
  // a fresh token signed with the same key would be rejected the same way, so they are 'failed'.
  if (status === 403 && reason === 'ExpiredProviderToken') return { kind: 'renew-token', reason };
  // 429 TooManyRequests / TooManyProviderTokenUpdates: "retry with a delay".
  if (status === 429) return { kind: 'retry', reason };
  // 500 InternalServerError, 503 ServiceUnavailable / Shutdown (and gateway 502/504): temporary.
  if (status >= 500 && status <= 599) return { kind: 'retry', reason };
  return { kind: 'failed', reason };
}
