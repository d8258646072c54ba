/*
 * Apple's "Get the latest version of a pass" (GET /v1/passes/{passTypeIdentifier}/{serialNumber}): what the route
 * in routes.ts uses.
 */
import { parseHttpDate } from '../passes/versions.js';
import type { PassCredentials } from './known-passes.js';

export const latestPassRoute = '/v1/passes/:passTypeIdentifier/:serialNumber';

export const pkpassContentType = 'application/vnd.apple.pkpass';

/** Devices must always revalidate: the pass may change at any time. */
export const passCacheControl = 'no-cache';

/**
 * True when If-Modified-Since is at or after the pass's Last-Modified. Wallet sends back the Last-Modified it got, so
 * the usual case is the very same text, which needs no date parsing.
 */
export function notModifiedSince(
  pass: Pick<PassCredentials, 'lastModified' | 'lastModifiedHttp'>,
  ifModifiedSince: string | undefined,
): boolean {
  if (ifModifiedSince === pass.lastModifiedHttp) return true;
  const since = parseHttpDate(ifModifiedSince);
  return since !== undefined && pass.lastModified.getTime() <= since.getTime();
}
