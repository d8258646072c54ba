import type { PrismaClient } from '../db/database.js';
import { UnauthorizedError } from '../errors.js';
import type { PassKey } from '../passes/passes.js';
import { secretsEqual } from '../passes/tokens.js';

/** Apple: Wallet sends `Authorization: ApplePass <authenticationToken>` on the pass's own endpoints. */
export function applePassToken(header: string | undefined): string | undefined {
  const match = /^ApplePass\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}

// Compared against when the pass does not exist, so that unknown passes take as long as wrong tokens.
const absentPassToken = 'no-such-pass-no-such-pass-no-such-pass';

/** What Apple's endpoints need of an authenticated pass: which one, and its current version. */
export interface AuthenticatedPass extends PassKey {
  id: bigint;
  version: number;
  lastModified: Date;
}

/** The token, checked first: a request without one costs no database lookup. */
export function requireApplePassToken(authorization: string | undefined): string {
  const token = applePassToken(authorization);
  if (!token) throw new UnauthorizedError('Missing "Authorization: ApplePass <authenticationToken>" header');
  return token;
}

export const wrongTokenError = () => new UnauthorizedError('Unknown pass or wrong authenticationToken');

/**
 * The pass, if the token is its authenticationToken. Apple answers 401 both for a wrong token and for a pass it
 * does not know, so the two are indistinguishable to a caller. Each pass has its own token; one pass's token
 * never authorizes another. One indexed lookup of the few columns needed (not the pass's contents): it runs on
 * every request Wallet makes, and it is always made, so the version is the database's, never a remembered one.
 */
export async function authenticatePass(
  prisma: PrismaClient,
  key: PassKey,
  authorization: string | undefined,
): Promise<AuthenticatedPass> {
  const token = requireApplePassToken(authorization);
  // findUnique, not raw SQL: Prisma batches the findUniques of one tick into one query (its dataloader).
  const row = await prisma.pass.findUnique({
    select: { id: true, authenticationToken: true, version: true, lastModified: true },
    where: { passTypeIdentifier_serialNumber: key },
  });
  const matches = secretsEqual(token, row?.authenticationToken ?? absentPassToken);
  if (!row || !matches) throw wrongTokenError();
  return { ...key, id: row.id, version: row.version, lastModified: row.lastModified };
}
