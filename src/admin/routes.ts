import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { UnauthorizedError } from '../errors.js';
import {
  countRegistrations,
  createPass,
  deletePass,
  getPass,
  getSignedBundle,
  listPasses,
  type PassesDeps,
  type StoredPass,
  updatePass,
} from '../passes/passes.js';
import { secretsEqual } from '../passes/tokens.js';
import { outboxStats, pushFailureCounts } from '../push/outbox.js';
import { passParams } from '../wallet/schemas.js';
import type { DownloadLinks } from './download-links.js';
import { listPassesQuery, logsQuery, newPassBody, passChangeBody } from './schemas.js';

export interface AdminDeps extends PassesDeps {
  adminToken: string;
  links: DownloadLinks;
}

/** The admin API: `Authorization: Bearer $ADMIN_TOKEN` on every route. */
export const adminRoutes =
  (deps: AdminDeps): FastifyPluginAsync =>
  async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();

    app.addHook('onRequest', async (request, reply) => {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
      if (!match?.[1] || !secretsEqual(match[1], deps.adminToken)) {
        reply.header('www-authenticate', 'Bearer');
        throw new UnauthorizedError('Missing or wrong admin token (Authorization: Bearer $ADMIN_TOKEN)');
      }
      // Admin answers carry pass contents and links: never cache them.
      reply.header('cache-control', 'no-store');
    });

    const view = async (pass: StoredPass) => ({
      passTypeIdentifier: pass.passTypeIdentifier,
      serialNumber: pass.serialNumber,
      template: pass.template,
      fields: pass.fields,
      pass: pass.overrides,
      changeMessages: pass.changeMessages,
      version: pass.version,
      lastModified: pass.lastModified.toISOString(),
      createdAt: pass.createdAt.toISOString(),
      updatedAt: pass.updatedAt.toISOString(),
      registeredDevices: await countRegistrations(deps, pass.id),
      downloadUrl: deps.links.create(pass, deps.clock.now()),
    });

    app.post(
      '/admin/passes',
      { bodyLimit: 256 * 1024, schema: { body: newPassBody } },
      async (request, reply) => {
        const pass = await createPass(deps, request.body);
        return reply.code(201).send(await view(pass));
      },
    );

    app.get('/admin/passes', { schema: { querystring: listPassesQuery } }, async (request) => {
      const page = await listPasses(deps, request.query);
      return { passes: await Promise.all(page.passes.map(view)), nextCursor: page.nextCursor ?? null };
    });

    const passPath = '/admin/passes/:passTypeIdentifier/:serialNumber';

    app.get(passPath, { schema: { params: passParams } }, async (request) =>
      view(await getPass(deps, request.params)),
    );

    app.patch(
      passPath,
      { bodyLimit: 256 * 1024, schema: { params: passParams, body: passChangeBody } },
      async (request) => view(await updatePass(deps, request.params, request.body)),
    );

    app.delete(passPath, { schema: { params: passParams } }, async (request, reply) => {
      await deletePass(deps, request.params);
      return reply.code(204).send();
    });

    app.get(`${passPath}/pkpass`, { schema: { params: passParams } }, async (request, reply) => {
      const pass = await getPass(deps, request.params);
      return reply
        .type('application/vnd.apple.pkpass')
        .header('last-modified', pass.lastModified.toUTCString())
        .send(await getSignedBundle(deps, pass));
    });

    app.get('/admin/templates', async () => ({
      templates: [...deps.templates.values()].map((template) => ({
        name: template.name,
        style: template.style,
        fieldKeys: template.fieldKeys,
      })),
    }));

    // Push delivery: what waits in the outbox, and the pushes given up on, counted by APNs reason.
    app.get('/admin/pushes', async () => ({
      outbox: await outboxStats(deps.prisma, deps.clock.now()),
      failures: await pushFailureCounts(deps.prisma),
    }));

    app.get('/admin/logs', { schema: { querystring: logsQuery } }, async (request) => {
      const logs = await deps.prisma.deviceLog.findMany({
        orderBy: { id: 'desc' },
        take: request.query.limit,
      });
      return { logs: logs.map((log) => ({ message: log.message, createdAt: log.createdAt.toISOString() })) };
    });
  };
