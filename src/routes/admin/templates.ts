import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { InvalidError, NotFoundError } from '../../errors.js';
import { ARCHIVE_LIMITS } from '../../passes/template-archive.js';
import type { CatalogEntry } from '../../passes/template-catalog.js';
import type { Template } from '../../passes/templates.js';
import { templateProblem } from '../../signing/bundle.js';
import { adminDoc, bodyErrors, commonErrors, errorResponses, noBody } from '../route-docs.js';
import type { AdminDeps } from './deps.js';
import {
  publishTemplateQuery,
  templateParams,
  templatesAnswer,
  templateVersionParams,
  templateView,
  zipBody,
} from './schemas.js';

/** A zip of a model compresses little (its images are PNGs): its limit is the files' own. */
const MAX_ZIP_BYTES = ARCHIVE_LIMITS.totalBytes;

/**
 * The templates passes are made from: MODELS_DIR's, and versions uploaded here as zips of a .pass folder, with the
 * field keys each takes and whether Wallet accepts it.
 */
export const templateRoutes: FastifyPluginAsync<AdminDeps> = async (fastify, deps) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  // What Wallet would refuse in each template, checked once: a template (a stored version too) never changes, and
  // the check is the same for every identity (it only fills in the identifiers).
  const problems = new WeakMap<Template, string | null>();
  const problemOf = (template: Template): string | null => {
    let problem = problems.get(template);
    if (problem === undefined) {
      problem = templateProblem(template, deps.identities.primary().signing) ?? null;
      problems.set(template, problem);
    }
    return problem;
  };
  const view = ({ template, versions }: CatalogEntry) => {
    const problem = problemOf(template);
    return {
      name: template.name,
      version: template.version,
      versions,
      source: template.version === null ? ('models' as const) : ('api' as const),
      passTypeIdentifier: template.passTypeIdentifier,
      style: template.style,
      fieldKeys: template.fieldKeys,
      images: Object.keys(template.files)
        .filter((path) => path.endsWith('.png'))
        .sort(),
      usable: problem === null,
      problem,
      conversions: template.conversions,
    };
  };
  const entry = async (name: string): Promise<CatalogEntry> => {
    const found = await deps.templates.entry(name);
    if (!found) throw new NotFoundError(`No template "${name}"`);
    return found;
  };

  app.get(
    '/admin/templates',
    {
      schema: {
        ...adminDoc('listTemplates', 'List templates and their field keys'),
        response: {
          200: templatesAnswer.meta({ description: 'The templates' }),
          ...errorResponses(401, ...commonErrors),
        },
      },
    },
    async () => ({ templates: (await deps.templates.list()).map(view) }),
  );

  app.get(
    '/admin/templates/:name',
    {
      schema: {
        ...adminDoc('getTemplate', 'Read a template (its latest version)'),
        params: templateParams,
        response: {
          200: templateView.meta({ description: 'The template' }),
          ...errorResponses(400, 401, 404, ...commonErrors),
        },
      },
    },
    async (request) => view(await entry(request.params.name)),
  );

  // Zip bodies, parsed as bytes in this scope only; every other route takes JSON (415 else).
  await app.register(async (scope) => {
    scope.addContentTypeParser('application/zip', { parseAs: 'buffer' }, (_request, body, done) =>
      done(null, body),
    );
    scope.withTypeProvider<ZodTypeProvider>().post(
      '/admin/templates/:name/versions',
      {
        bodyLimit: MAX_ZIP_BYTES,
        schema: {
          ...adminDoc(
            'publishTemplate',
            'Publish a template version from a zip of its .pass folder',
            'The first upload of a name makes version 1, each further one the next. The zip holds pass.json, the ' +
              'images (@2x, @3x) and <lang>.lproj folders, at its root or in one .pass folder, with an optional ' +
              'override.json beside them. It is checked as Wallet checks a pass made from it (400 naming the file ' +
              'and key); hex colours and the deprecated barcode are converted. New passes are made from the latest ' +
              'version; a pass keeps the version it was made from.',
          ),
          consumes: ['application/zip'],
          params: templateParams,
          querystring: publishTemplateQuery,
          body: zipBody,
          response: {
            201: templateView.meta({ description: 'The published version' }),
            ...errorResponses(400, 401, 409, ...bodyErrors, ...commonErrors),
          },
        },
      },
      async (request, reply) => {
        const owner = request.query.passTypeIdentifier;
        const identity = owner === undefined ? undefined : await deps.identities.find(owner);
        if (owner !== undefined && !identity) {
          throw new InvalidError(`passTypeIdentifier: no identity ${owner} (GET /admin/identities)`);
        }
        const published = await deps.templates.publish(request.params.name, request.body, identity?.signing);
        const { versions } = await entry(published.name);
        return reply.code(201).send(view({ template: published, versions }));
      },
    );
  });

  app.delete(
    '/admin/templates/:name',
    {
      schema: {
        ...adminDoc(
          'deleteTemplate',
          'Delete an uploaded template, every version of it',
          '409 while passes are made from any of its versions, and for a MODELS_DIR template.',
        ),
        params: templateParams,
        response: { 204: noBody('Deleted'), ...errorResponses(400, 401, 404, 409, ...commonErrors) },
      },
    },
    async (request, reply) => {
      await deps.templates.remove(request.params.name);
      return reply.code(204).send();
    },
  );

  app.delete(
    '/admin/templates/:name/versions/:version',
    {
      schema: {
        ...adminDoc(
          'deleteTemplateVersion',
          'Delete an uploaded template version that no pass is made from',
          '409 while passes are made from it, and for a MODELS_DIR template.',
        ),
        params: templateVersionParams,
        response: { 204: noBody('Deleted'), ...errorResponses(400, 401, 404, 409, ...commonErrors) },
      },
    },
    async (request, reply) => {
      await deps.templates.remove(request.params.name, request.params.version);
      return reply.code(204).send();
    },
  );
};
