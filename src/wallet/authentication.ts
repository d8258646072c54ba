import type { PrismaClient } from '../db/database.js';
import { UnauthorizedError } from '../errors.js';
import { findPass, type PassKey, type StoredPass } from '../passes/passes.js';
import { secretsEqual } from '../passes/tokens.js';

/** Apple: Wallet sends `Authorization: ApplePass <authenticationToken>` on the pass's own endpoints. */
export function applePassToken(header: string | undefined): string | undefined {
  const match = /^ApplePass\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}

// Compared against when the pass does not exist, so that unknown passes take as long as wrong tokens.
const absentPassToken = 'no-such-pass-no-such-pass-no-such-pass';

/**
 * The pass, if the token is its authenticationToken. Apple answers 401 both for a wrong token and for a pass it
 * does not know, so the two are indistinguishable to a caller. Each pass has its own token; one pass's token
 * never authorizes another.
 */
export async function authenticatePass(
  prisma: PrismaClient,
  key: PassKey,
  authorization: string | undefined,
): Promise<StoredPass> {
  const token = applePassToken(authorization);
  if (!token) throw new UnauthorizedError('Missing "Authorization: ApplePass <authenticationToken>" header');
  const pass = await findPass({ prisma }, key);
  const matches = secretsEqual(token, pass?.authenticationToken ?? absentPassToken);
  if (!pass || !matches) throw new UnauthorizedError('Unknown pass or wrong authenticationToken');
  return pass;
}
