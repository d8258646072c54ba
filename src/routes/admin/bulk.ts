import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { createBulkJob, getBulkJob, previewBulkChange } from '../../passes/bulk.js';
import { adminDoc, bodyErrors, commonErrors, errorResponses, responseHeaders } from '../route-docs.js';
import type { AdminDeps } from './deps.js';
import { bulkChangeBody, bulkJobParams, bulkJobView, bulkPreview } from './schemas.js';

/** Bulk changes: one job changes many passes, in pages, and is followed by its id. */
export const bulkRoutes: FastifyPluginAsync<AdminDeps> = async (fastify, deps) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  app.post(
    '/admin/passes/bulk',
    {
      // 100,000 serials of up to 256 characters (≈26 MB of JSON) fit; the default 64 KiB stops at ~1,500 UUIDs.
      bodyLimit: 32 * 1024 * 1024,
      schema: {
        ...adminDoc(
          'createBulkChange',
          'Change many passes as one job',
          'The change is validated as PATCH validates it (400 before a job exists); the job then changes the ' +
            'selected passes in pages, one transaction per page (a pass whose change fails is counted and ' +
            'skipped). Follow it with GET /admin/bulk/{jobId}.',
        ),
        body: bulkChangeBody,
        response: {
          202: bulkJobView.meta({
            description: 'The job, queued',
            headers: { location: responseHeaders.location },
          }),
          ...errorResponses(400, 401, ...bodyErrors, ...commonErrors),
        },
      },
    },
    async (request, reply) => {
      const job = await createBulkJob(deps, request.body.select, request.body.change);
      deps.wakeBulkRunner?.();
      return reply.code(202).header('location', `/admin/bulk/${job.jobId}`).send(job);
    },
  );

  app.post(
    '/admin/passes/bulk/preview',
    {
      bodyLimit: 32 * 1024 * 1024,
      schema: {
        ...adminDoc(
          'previewBulkChange',
          'Dry run of a bulk change: how many passes and devices it would reach',
          'Checked as POST /admin/passes/bulk checks it; nothing is changed and no job is made. For example, before ' +
            'moving every pass of a template to a version just published: {"select": {"template": "…"}, ' +
            '"change": {"templateVersion": 2}}.',
        ),
        body: bulkChangeBody,
        response: {
          200: bulkPreview.meta({ description: 'What the change would reach' }),
          ...errorResponses(400, 401, ...bodyErrors, ...commonErrors),
        },
      },
    },
    async (request) => previewBulkChange(deps, request.body.select, request.body.change),
  );

  app.get(
    '/admin/bulk/:jobId',
    {
      schema: {
        ...adminDoc('getBulkChange', 'Progress of a bulk change'),
        params: bulkJobParams,
        response: {
          200: bulkJobView.meta({ description: 'The job and its progress' }),
          ...errorResponses(400, 401, 404, ...commonErrors),
        },
      },
    },
    async (request) => getBulkJob(deps, request.params.jobId),
  );
};
