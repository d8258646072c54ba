import type { Repositories } from '../../src/db/repositories.js';
import { createTemplateCatalog, type TemplateCatalog } from '../../src/passes/template-catalog.js';
import type { Template } from '../../src/passes/templates.js';
import type { Identities } from '../../src/signing/identities.js';

/** The template catalog as src/server.ts makes it: MODELS_DIR's templates and the database's uploaded ones. */
export function testTemplateCatalog(
  files: ReadonlyMap<string, Template>,
  repositories: Pick<Repositories, 'templates'>,
  identities: Pick<Identities, 'primary'>,
  clock: { now(): Date } = { now: () => new Date() },
): TemplateCatalog {
  return createTemplateCatalog({
    files,
    repository: repositories.templates,
    identifiers: () => identities.primary().signing,
    clock,
  });
}
