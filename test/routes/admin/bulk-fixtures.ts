import { expect } from 'vitest';
import type { TestServer } from '../../support/server.js';

/** `count` passes of a template through the admin API, serials `${prefix}-0`, `${prefix}-1`, …; their serials. */
export async function createPasses(
  server: TestServer,
  template: string,
  prefix: string,
  count: number,
  fields: Record<string, unknown> = {},
) {
  const serials: string[] = [];
  for (let i = 0; i < count; i++) {
    const serialNumber = `${prefix}-${i}`;
    const created = await server.admin('POST', '/admin/passes', { template, serialNumber, fields });
    expect(created.status).toBe(201);
    serials.push(serialNumber);
  }
  return serials;
}

/**
 * A device (its own library identifier, the given push token) registered for the pass, inserted directly:
 * registration is not what the bulk tests are about. One push token may be registered for several passes.
 */
export async function registerDevice(server: TestServer, serialNumber: string, pushToken: string) {
  const prisma = server.database.prisma;
  const pass = await prisma.pass.findFirstOrThrow({ where: { serialNumber } });
  // devices.push_token is deprecated (read by nothing): pushes go to the registration's token.
  const device = await prisma.device.create({
    data: { deviceLibraryIdentifier: `device-${serialNumber}-${pushToken}`, pushToken: '' },
  });
  await prisma.registration.create({ data: { deviceId: device.id, passId: pass.id, pushToken } });
}

/** What a bulk runner needs of the passes service, as the test server has it. */
export function passesDeps(server: TestServer) {
  return {
    repositories: server.database.repositories,
    templates: server.templates,
    identities: server.identities,
    signer: server.signer,
    clock: { now: () => new Date() },
    webServiceURL: server.baseUrl,
  };
}
