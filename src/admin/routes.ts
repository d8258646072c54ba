import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { adminDoc, errorResponses, noBody, pkpassResponse } from '../docs/route-docs.js';
import { UnauthorizedError } from '../errors.js';
import { createBulkJob, getBulkJob } from '../passes/bulk.js';
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
import { passParams } from '../wallet/schemas.js';
import type { DownloadLinks } from './download-links.js';
import {
  bulkChangeBody,
  bulkJobParams,
  bulkJobView,
  listPassesQuery,
  logsAnswer,
  logsQuery,
  newPassBody,
  passChangeBody,
  passPage,
  passView,
  pushesAnswer,
  templatesAnswer,
} from './schemas.js';

export interface AdminDeps extends PassesDeps {
  adminToken: string;
  links: DownloadLinks;
  /** Tells this instance's bulk runner that a job was created, so it starts now rather than at its next poll. */
  wakeBulkRunner?: () => void;
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
      {
        bodyLimit: 256 * 1024,
        schema: {
          ...adminDoc(
            'Create a pass',
            'Unknown template, field key or override: 400. Existing serial number: 409.',
          ),
          body: newPassBody,
          response: { 201: passView, ...errorResponses(400, 401, 409, 429) },
        },
      },
      async (request, reply) => {
        const pass = await createPass(deps, request.body);
        return reply.code(201).send(await view(pass));
      },
    );

    app.get(
      '/admin/passes',
      {
        schema: {
          ...adminDoc('List passes', 'In creation order; pass nextCursor back as cursor for the next page.'),
          querystring: listPassesQuery,
          response: { 200: passPage, ...errorResponses(400, 401, 429) },
        },
      },
      async (request) => {
        const page = await listPasses(deps, request.query);
        return { passes: await Promise.all(page.passes.map(view)), nextCursor: page.nextCursor ?? null };
      },
    );

    app.post(
      '/admin/passes/bulk',
      {
        // 100,000 serials of up to 256 characters (≈26 MB of JSON) fit; the default 64 KiB stops at ~1,500 UUIDs.
        bodyLimit: 32 * 1024 * 1024,
        schema: {
          ...adminDoc(
            'Change many passes as one job',
            'The change is validated as PATCH validates it (400 before a job exists); the job then changes the ' +
              'selected passes in pages, one transaction per page (a pass whose change fails is counted and ' +
              'skipped). Follow it with GET /admin/bulk/{jobId}.',
          ),
          body: bulkChangeBody,
          response: { 202: bulkJobView, ...errorResponses(400, 401, 429) },
        },
      },
      async (request, reply) => {
        const job = await createBulkJob(deps, request.body.select, request.body.change);
        deps.wakeBulkRunner?.();
        return reply.code(202).header('location', `/admin/bulk/${job.jobId}`).send(job);
      },
    );

    app.get(
      '/admin/bulk/:jobId',
      {
        schema: {
          ...adminDoc('Progress of a bulk change'),
          params: bulkJobParams,
          response: { 200: bulkJobView, ...errorResponses(400, 401, 404, 429) },
        },
      },
      async (request) => getBulkJob(deps, request.params.jobId),
    );

    const passPath = '/admin/passes/:passTypeIdentifier/:serialNumber';

    app.get(
      passPath,
      {
        schema: {
          ...adminDoc('Read a pass'),
          params: passParams,
          response: { 200: passView, ...errorResponses(400, 401, 404, 429) },
        },
      },
      async (request) => view(await getPass(deps, request.params)),
    );

    app.patch(
      passPath,
      {
        bodyLimit: 256 * 1024,
        schema: {
          ...adminDoc(
            'Change a pass',
            'fields, pass and changeMessages are merged key by key; makes a new version and pushes it to devices.',
          ),
          params: passParams,
          body: passChangeBody,
          response: { 200: passView, ...errorResponses(400, 401, 404, 429) },
        },
      },
      async (request) => view(await updatePass(deps, request.params, request.body)),
    );

    app.delete(
      passPath,
      {
        schema: {
          ...adminDoc('Delete a pass and its registrations'),
          params: passParams,
          response: { 204: noBody('Deleted'), ...errorResponses(400, 401, 404, 429) },
        },
      },
      async (request, reply) => {
        await deletePass(deps, request.params);
        return reply.code(204).send();
      },
    );

    app.get(
      `${passPath}/pkpass`,
      {
        schema: {
          ...adminDoc('Download the signed .pkpass'),
          params: passParams,
          response: { 200: pkpassResponse, ...errorResponses(400, 401, 404, 429) },
        },
      },
      async (request, reply) => {
        const pass = await getPass(deps, request.params);
        return reply
          .type('application/vnd.apple.pkpass')
          .header('last-modified', pass.lastModified.toUTCString())
          .send(await getSignedBundle(deps, pass));
      },
    );

    app.get(
      '/admin/templates',
      {
        schema: {
          ...adminDoc('List templates and their field keys'),
          response: { 200: templatesAnswer, ...errorResponses(401, 429) },
        },
      },
      async () => ({
        templates: [...deps.templates.values()].map((template) => ({
          name: template.name,
          style: template.style,
          fieldKeys: template.fieldKeys,
        })),
      }),
    );

    // Push delivery: what waits in the outbox, and the pushes given up on, counted by APNs reason.
    app.get(
      '/admin/pushes',
      {
        schema: {
          ...adminDoc('Push outbox depth and failed pushes by APNs reason'),
          response: { 200: pushesAnswer, ...errorResponses(401, 429) },
        },
      },
      async () => ({
        outbox: await deps.repositories.outbox.stats(deps.clock.now()),
        failures: await deps.repositories.outbox.failureCounts(),
      }),
    );

    app.get(
      '/admin/logs',
      {
        schema: {
          ...adminDoc('The latest device log messages (POST /v1/log)'),
          querystring: logsQuery,
          response: { 200: logsAnswer, ...errorResponses(400, 401, 429) },
        },
      },
      async (request) => {
        const logs = await deps.repositories.deviceLogs.latest(request.query.limit);
        return {
          logs: logs.map((log) => ({ message: log.message, createdAt: log.createdAt.toISOString() })),
        };
      },
    );
  };
