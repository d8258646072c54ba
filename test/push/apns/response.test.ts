import { describe, expect, it } from 'vitest';
import { classifyApnsResponse } from '../../../src/push/apns/response.js';

const body = (reason: string, extra: Record<string, unknown> = {}) => JSON.stringify({ reason, ...extra });

describe('classifyApnsResponse', () => {
  it('200 is delivered, with the apns-id', () => {
    expect(classifyApnsResponse(200, '', 'abc')).toEqual({ kind: 'delivered', apnsId: 'abc' });
    expect(classifyApnsResponse(200, '')).toEqual({ kind: 'delivered' });
  });

  it('410 Unregistered is unregistered, at the timestamp APNs gives (ms)', () => {
    const at = Date.UTC(2024, 0, 2, 3, 4, 5);
    expect(classifyApnsResponse(410, body('Unregistered', { timestamp: at }))).toEqual({
      kind: 'unregistered',
      reason: 'Unregistered',
      unregisteredAt: new Date(at),
    });
    expect(classifyApnsResponse(410, body('ExpiredToken'))).toEqual({
      kind: 'unregistered',
      reason: 'ExpiredToken',
    });
  });

  it('400 BadDeviceToken and DeviceTokenNotForTopic are unregistered', () => {
    expect(classifyApnsResponse(400, body('BadDeviceToken'))).toEqual({
      kind: 'unregistered',
      reason: 'BadDeviceToken',
    });
    expect(classifyApnsResponse(400, body('DeviceTokenNotForTopic')).kind).toBe('unregistered');
  });

  it('429, 500 and 503 are retried', () => {
    expect(classifyApnsResponse(429, body('TooManyRequests'))).toEqual({
      kind: 'retry',
      reason: 'TooManyRequests',
    });
    expect(classifyApnsResponse(429, body('TooManyProviderTokenUpdates')).kind).toBe('retry');
    expect(classifyApnsResponse(500, body('InternalServerError')).kind).toBe('retry');
    expect(classifyApnsResponse(503, body('ServiceUnavailable')).kind).toBe('retry');
    expect(classifyApnsResponse(503, body('Shutdown')).kind).toBe('retry');
    expect(classifyApnsResponse(400, body('IdleTimeout')).kind).toBe('retry');
  });

  it('403 ExpiredProviderToken asks for a new token; other 403s fail', () => {
    expect(classifyApnsResponse(403, body('ExpiredProviderToken'))).toEqual({
      kind: 'renew-token',
      reason: 'ExpiredProviderToken',
    });
    expect(classifyApnsResponse(403, body('InvalidProviderToken')).kind).toBe('failed');
    expect(classifyApnsResponse(403, body('MissingProviderToken')).kind).toBe('failed');
    expect(classifyApnsResponse(403, body('BadCertificate')).kind).toBe('failed');
  });

  it('other 4xx fail, with the reason', () => {
    for (const reason of ['BadTopic', 'MissingTopic', 'PayloadEmpty', 'TopicDisallowed', 'BadPriority']) {
      expect(classifyApnsResponse(400, body(reason))).toEqual({ kind: 'failed', reason });
    }
    expect(classifyApnsResponse(413, body('PayloadTooLarge')).kind).toBe('failed');
    expect(classifyApnsResponse(405, body('MethodNotAllowed')).kind).toBe('failed');
  });

  it('survives bodies that are not APNs JSON', () => {
    expect(classifyApnsResponse(400, 'not json')).toEqual({ kind: 'failed', reason: 'HTTP 400' });
    expect(classifyApnsResponse(410, '[]')).toEqual({ kind: 'unregistered', reason: 'HTTP 410' });
    expect(classifyApnsResponse(410, body('Unregistered', { timestamp: 'soon' }))).toEqual({
      kind: 'unregistered',
      reason: 'Unregistered',
    });
  });
});
