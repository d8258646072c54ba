import { expect } from 'vitest';
import type { TestServer } from '../../support/server.js';

/** A pass as Wallet knows it: its identifiers, its token, and the path of its download. */
export interface CreatedPass {
  passTypeIdentifier: string;
  serialNumber: string;
  authenticationToken: string;
  path: string;
}

/** Creates a loyalty pass through the admin API; the token is read from the database (the API does not show it). */
export async function createPass(server: TestServer): Promise<CreatedPass> {
  const created = await server.admin('POST', '/admin/passes', { template: 'loyalty' });
  expect(created.status).toBe(201);
  const { passTypeIdentifier, serialNumber } = created.body as {
    passTypeIdentifier: string;
    serialNumber: string;
  };
  const { authenticationToken } = await server.database.prisma.pass.findUniqueOrThrow({
    where: { passTypeIdentifier_serialNumber: { passTypeIdentifier, serialNumber } },
  });
  return {
    passTypeIdentifier,
    serialNumber,
    authenticationToken,
    path: `/v1/passes/${passTypeIdentifier}/${serialNumber}`,
  };
}
