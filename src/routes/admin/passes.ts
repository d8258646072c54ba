import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { MAX_PASS_IMAGE_BYTES } from '../../passes/pass-images.js';
import {
  createPass,
  deletePass,
  getPass,
  getPassImage,
  listPasses,
  type PassSummary,
  type StoredPass,
  summarize,
  updatePass,
} from '../../passes/passes.js';
import { adminDoc, bodyErrors, commonErrors, errorResponses, fileResponse, noBody } from '../route-docs.js';
import { passParams } from '../wallet/schemas.js';
import type { AdminDeps } from './deps.js';
import {
  adminPassPath,
  listPassesQuery,
  newPassBody,
  passChangeBody,
  passImageParams,
  passPage,
  passView,
  pngBody,
} from './schemas.js';

/** Passes: create, list, read, change, delete, and their own images. */
export const passRoutes: FastifyPluginAsync<AdminDeps> = async (fastify, deps) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  const view = (pass: StoredPass, summary: PassSummary | undefined) => ({
    passTypeIdentifier: pass.passTypeIdentifier,
    serialNumber: pass.serialNumber,
    template: pass.template,
    templateVersion: pass.templateVersion,
    fields: pass.fields,
    pass: pass.overrides,
    changeMessages: pass.changeMessages,
    strings: pass.strings,
    version: pass.version,
    lastModified: pass.lastModified.toISOString(),
    createdAt: pass.createdAt.toISOString(),
    updatedAt: pass.updatedAt.toISOString(),
    images: summary?.images ?? [],
    registeredDevices: summary?.registeredDevices ?? 0,
    downloadUrl: deps.links.create(pass, deps.clock.now()),
  });
  /** One pass's answer. */
  const viewOne = async (pass: StoredPass) => view(pass, (await summarize(deps, [pass])).get(pass.id));

  app.post(
    '/admin/passes',
    {
      bodyLimit: 256 * 1024,
      schema: {
        ...adminDoc(
          'createPass',
          'Create a pass',
          'Unknown template, field key or override: 400. Existing serial number: 409.',
        ),
        body: newPassBody,
        response: {
          201: passView.meta({ description: 'Created' }),
          ...errorResponses(400, 401, 409, ...bodyErrors, ...commonErrors),
        },
      },
    },
    async (request, reply) => {
      const pass = await createPass(deps, request.body);
      return reply.code(201).send(await viewOne(pass));
    },
  );

  app.get(
    '/admin/passes',
    {
      schema: {
        ...adminDoc(
          'listPasses',
          'List passes',
          'In creation order; pass nextCursor back as cursor for the next page.',
        ),
        querystring: listPassesQuery,
        response: {
          200: passPage.meta({ description: 'A page of passes' }),
          ...errorResponses(400, 401, ...commonErrors),
        },
      },
    },
    async (request) => {
      const page = await listPasses(deps, request.query);
      const summaries = await summarize(deps, page.passes);
      const passes = page.passes.map((pass) => view(pass, summaries.get(pass.id)));
      return { passes, nextCursor: page.nextCursor ?? null };
    },
  );

  app.get(
    adminPassPath,
    {
      schema: {
        ...adminDoc('getPass', 'Read a pass'),
        params: passParams,
        response: {
          200: passView.meta({ description: 'The pass' }),
          ...errorResponses(400, 401, 404, ...commonErrors),
        },
      },
    },
    async (request) => viewOne(await getPass(deps, request.params)),
  );

  app.patch(
    adminPassPath,
    {
      bodyLimit: 256 * 1024,
      schema: {
        ...adminDoc(
          'changePass',
          'Change a pass',
          'fields, pass, changeMessages and each language of strings are merged key by key; makes a new version and pushes it to devices.',
        ),
        params: passParams,
        body: passChangeBody,
        response: {
          200: passView.meta({ description: 'The changed pass, at its new version' }),
          ...errorResponses(400, 401, 404, 409, ...bodyErrors, ...commonErrors),
        },
      },
    },
    async (request) => viewOne(await updatePass(deps, request.params, request.body)),
  );

  app.delete(
    adminPassPath,
    {
      schema: {
        ...adminDoc('deletePass', 'Delete a pass and its registrations'),
        params: passParams,
        response: { 204: noBody('Deleted'), ...errorResponses(400, 401, 404, ...commonErrors) },
      },
    },
    async (request, reply) => {
      await deletePass(deps, request.params);
      return reply.code(204).send();
    },
  );
  // A pass's own images: PNG bodies, parsed as bytes in this scope only; every other route takes JSON (415 else).
  await app.register(async (scope) => {
    scope.addContentTypeParser('image/png', { parseAs: 'buffer' }, (_request, body, done) =>
      done(null, body),
    );
    const images = scope.withTypeProvider<ZodTypeProvider>();
    const imagePath = `${adminPassPath}/images/:image`;
    images.get(
      imagePath,
      {
        schema: {
          ...adminDoc(
            'getPassImage',
            "Download one of the pass's own images",
            "Not its template's: 404 if the pass has none of that name.",
          ),
          params: passImageParams,
          response: {
            200: fileResponse('The PNG', 'image/png'),
            ...errorResponses(400, 401, 404, ...commonErrors),
          },
        },
      },
      async (request, reply) => {
        const { image, ...key } = request.params;
        return reply.type('image/png').send(await getPassImage(deps, key, image));
      },
    );
    images.put(
      imagePath,
      {
        bodyLimit: MAX_PASS_IMAGE_BYTES,
        schema: {
          ...adminDoc(
            'putPassImage',
            "Set one of the pass's own images",
            "The PNG replaces the template's image of that file name in this pass; checked against Apple's images for " +
              'the pass style (which images it shows, their size in points at 1x, @2x and @3x). Makes a new version ' +
              'and pushes it to devices.',
          ),
          consumes: ['image/png'],
          params: passImageParams,
          body: pngBody,
          response: {
            200: passView.meta({ description: 'The pass, at its new version' }),
            ...errorResponses(400, 401, 404, 409, ...bodyErrors, ...commonErrors),
          },
        },
      },
      async (request) => {
        const { image, ...key } = request.params;
        return viewOne(await updatePass(deps, key, { images: { [image]: request.body } }));
      },
    );
    images.delete(
      imagePath,
      {
        schema: {
          ...adminDoc(
            'deletePassImage',
            "Drop one of the pass's own images",
            "The pass shows its template's image of that name again (if the template has one). Makes a new version " +
              'and pushes it to devices. 404 if the pass has no image of that name of its own.',
          ),
          params: passImageParams,
          response: {
            200: passView.meta({ description: 'The pass, at its new version' }),
            ...errorResponses(400, 401, 404, 409, ...commonErrors),
          },
        },
      },
      async (request) => {
        const { image, ...key } = request.params;
        return viewOne(await updatePass(deps, key, { images: { [image]: null } }));
      },
    );
  });
};
