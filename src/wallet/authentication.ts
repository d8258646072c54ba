import { timingSafeEqual } from 'node:crypto';
import { UnauthorizedError } from '../errors.js';
import type { PassKey } from '../passes/passes.js';
import { newAuthenticationToken } from '../passes/tokens.js';
import type { PassCredentials } from './known-passes.js';

/** Apple: Wallet sends `Authorization: ApplePass <authenticationToken>` on the pass's own endpoints. */
export function applePassToken(header: string | undefined): string | undefined {
  const match = /^ApplePass\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}

// Compared against when the pass does not exist, so that unknown passes take as long as wrong tokens; as long as
// the tokens we issue.
const absentPassToken = Buffer.from(newAuthenticationToken());

/** What Apple's endpoints need of an authenticated pass: which one, and its current version. */
export interface AuthenticatedPass extends PassKey, Omit<PassCredentials, 'authenticationToken'> {}

/**
 * Whether the token is the pass's, compared as bytes in constant time. Only a difference in length returns early,
 * and every token we issue has the same length (newAuthenticationToken), so the time taken tells nothing. Not hashed
 * first: a digest was the largest part of answering a 304 from memory (bench/RESULTS.md). Without a pass, the same
 * comparison runs against a stand-in, so that an unknown pass takes as long as a wrong token.
 */
export function tokenMatches(
  token: string,
  credentials: PassCredentials | undefined,
): credentials is PassCredentials {
  const expected = credentials?.authenticationToken ?? absentPassToken;
  const given = Buffer.from(token);
  const matches = given.length === expected.length && timingSafeEqual(given, expected);
  return credentials !== undefined && matches;
}

/** The token, checked first: a request without one costs no database lookup. */
export function requireApplePassToken(authorization: string | undefined): string {
  const token = applePassToken(authorization);
  if (!token) throw new UnauthorizedError('Missing "Authorization: ApplePass <authenticationToken>" header');
  return token;
}

export const wrongTokenError = () => new UnauthorizedError('Unknown pass or wrong authenticationToken');

/** The credentials of a pass, if there is one. */
export type FindCredentials = (key: PassKey) => Promise<PassCredentials | undefined>;

/**
 * The pass, if the token is its authenticationToken. Apple answers 401 both for a wrong token and for a pass it
 * does not know, so the two are indistinguishable to a caller. Each pass has its own token; one pass's token
 * never authorizes another.
 */
export async function authenticatePass(
  findCredentials: FindCredentials,
  key: PassKey,
  authorization: string | undefined,
): Promise<AuthenticatedPass> {
  const token = requireApplePassToken(authorization);
  const credentials = await findCredentials(key);
  if (!tokenMatches(token, credentials)) throw wrongTokenError();
  const { id, version, lastModified, lastModifiedHttp } = credentials;
  // Not `{ ...key, … }`: spreading here cost about 4 µs a request (V8 builds such objects slowly).
  const { passTypeIdentifier, serialNumber } = key;
  return { passTypeIdentifier, serialNumber, id, version, lastModified, lastModifiedHttp };
}
