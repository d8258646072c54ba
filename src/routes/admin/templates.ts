import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Template } from '../../passes/templates.js';
import { templateProblem } from '../../signing/bundle.js';
import { adminDoc, commonErrors, errorResponses } from '../route-docs.js';
import type { AdminDeps } from './deps.js';
import { templatesAnswer } from './schemas.js';

/** The templates passes are made from (models/), with the field keys each takes and whether Wallet accepts it. */
export const templateRoutes: FastifyPluginAsync<AdminDeps> = async (fastify, deps) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  // What Wallet would refuse in each template, checked once: templates do not change, and the check is the same
  // for every identity (it only fills in the identifiers).
  const problems = new WeakMap<Template, string | null>();
  const problemOf = (template: Template): string | null => {
    let problem = problems.get(template);
    if (problem === undefined) {
      problem = templateProblem(template, deps.identities.primary().signing) ?? null;
      problems.set(template, problem);
    }
    return problem;
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
    async () => ({
      templates: [...deps.templates.values()].map((template) => {
        const problem = problemOf(template);
        return {
          name: template.name,
          style: template.style,
          fieldKeys: template.fieldKeys,
          usable: problem === null,
          problem,
          conversions: template.conversions,
        };
      }),
    }),
  );
};
