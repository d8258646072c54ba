import type { PrismaClient } from './sql.js';
import { isUniqueViolation } from './unique-violation.js';

/** A stored template version: the model's files as uploaded (src/passes/template-archive.ts). */
export interface TemplateVersionRecord {
  name: string;
  version: number;
  archive: Buffer;
  createdAt: Date;
}

/** Templates uploaded through the admin API, by name and version; a version never changes once stored. */
export interface TemplatesRepository {
  find(name: string, version: number): Promise<TemplateVersionRecord | undefined>;
  /** The highest version of the name; undefined when none is stored. */
  latestVersion(name: string): Promise<number | undefined>;
  /** Every stored name with its versions, ascending. */
  versions(): Promise<Map<string, number[]>>;
  /** Stores the next version of the name (1 for a new one) and returns it. */
  publish(name: string, archive: Buffer, now: Date): Promise<number>;
  /** Removes the version unless passes are built from it: 'removed', 'in-use' or 'absent'. */
  remove(name: string, version: number): Promise<'removed' | 'in-use' | 'absent'>;
}

export function createTemplatesRepository(db: { prisma: PrismaClient }): TemplatesRepository {
  const { prisma } = db;
  return {
    async find(name, version) {
      const row = await prisma.templateVersion.findUnique({ where: { name_version: { name, version } } });
      return row ? { ...row, archive: Buffer.from(row.archive) } : undefined;
    },
    async latestVersion(name) {
      const row = await prisma.templateVersion.findFirst({
        where: { name },
        orderBy: { version: 'desc' },
        select: { version: true },
      });
      return row?.version;
    },
    async versions() {
      const rows = await prisma.templateVersion.findMany({
        select: { name: true, version: true },
        orderBy: [{ name: 'asc' }, { version: 'asc' }],
      });
      const byName = new Map<string, number[]>();
      for (const row of rows) byName.set(row.name, [...(byName.get(row.name) ?? []), row.version]);
      return byName;
    },
    async publish(name, archive, now) {
      // Two uploads of one name at once: the second's insert meets the first's primary key and takes the next number.
      for (let attempt = 0; ; attempt++) {
        try {
          const rows = await prisma.$queryRaw<Array<{ version: number }>>`
            INSERT INTO template_versions (name, version, archive, created_at)
            SELECT ${name}, coalesce(max(version), 0) + 1, ${Uint8Array.from(archive)}, ${now}
            FROM template_versions WHERE name = ${name}
            RETURNING version`;
          const version = rows[0]?.version;
          if (version === undefined) throw new Error('INSERT … RETURNING gave no row');
          return version;
        } catch (error) {
          if (!isUniqueViolation(error) || attempt >= 3) throw error;
        }
      }
    },
    async remove(name, version) {
      const removed = await prisma.$executeRaw`
        DELETE FROM template_versions WHERE name = ${name} AND version = ${version}
          AND NOT EXISTS (SELECT 1 FROM passes WHERE template = ${name} AND template_version = ${version})`;
      if (removed > 0) return 'removed';
      const exists = await prisma.templateVersion.count({ where: { name, version } });
      return exists > 0 ? 'in-use' : 'absent';
    },
  };
}
