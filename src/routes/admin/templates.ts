import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { adminDoc, commonErrors, errorResponses } from '../route-docs.js';
import type { AdminDeps } from './deps.js';
import { templatesAnswer } from './schemas.js';

/** The templates passes are made from (models/), with the field keys each takes. */
export const templateRoutes: FastifyPluginAsync<AdminDeps> = async (fastify, deps) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

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
    async () => ({
      templates: [...deps.templates.values()].map((template) => ({
        name: template.name,
        style: template.style,
        fieldKeys: template.fieldKeys,
      })),
    }),
  );
};
