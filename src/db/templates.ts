import { Prisma } from './generated/client.js';
import type { PrismaClient, SqlQuery } from './sql.js';
import { isUniqueViolation } from './unique-violation.js';

/** A stored template version: the model's files as uploaded (src/passes/template-archive.ts). */
export interface TemplateVersionRecord {
  name: string;
  version: number;
  archive: Buffer;
  /** The identity its passes belong to; null for any. */
  passTypeIdentifier: string | null;
  createdAt: Date;
}

/** Templates uploaded through the admin API, by name and version; a version never changes once stored. */
export interface TemplatesRepository {
  find(name: string, version: number): Promise<TemplateVersionRecord | undefined>;
  /** The highest version of the name; undefined when none is stored. */
  latestVersion(name: string): Promise<number | undefined>;
  /** Every stored name with its versions, ascending. */
  versions(): Promise<Map<string, number[]>>;
  /** The stored versions of one name, ascending. */
  versionsOf(name: string): Promise<number[]>;
  /** Stores the next version of the name (1 for a new one) and returns it. */
  publish(name: string, archive: Buffer, passTypeIdentifier: string | null, now: Date): Promise<number>;
  /**
   * Removes the version (every version when none is given) unless passes are built from it: 'removed', 'in-use'
   * or 'absent'.
   */
  remove(name: string, version?: number): Promise<'removed' | 'in-use' | 'absent'>;
}

/** Reads a version on the given connection: a change's transaction reads on its own (PGlite has only one). */
export type TemplateReader = Pick<TemplatesRepository, 'find'>;

export function templateReaderOn(query: SqlQuery): TemplateReader {
  return {
    async find(name, version) {
      const [row] = await query<{
        name: string;
        version: number;
        archive: Uint8Array;
        pass_type_identifier: string | null;
        created_at: Date;
      }>(
        `SELECT name, version, archive, pass_type_identifier, created_at FROM template_versions
        WHERE name = $1 AND version = $2`,
        [name, version],
      );
      if (!row) return undefined;
      const archive = Buffer.from(row.archive.buffer, row.archive.byteOffset, row.archive.byteLength);
      const { pass_type_identifier: passTypeIdentifier, created_at: createdAt } = row;
      return { name: row.name, version: row.version, archive, passTypeIdentifier, createdAt };
    },
  };
}

export function createTemplatesRepository(db: {
  prisma: PrismaClient;
  query: SqlQuery;
}): TemplatesRepository {
  const { prisma } = db;
  return {
    ...templateReaderOn(db.query),
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
    async versionsOf(name) {
      const rows = await prisma.templateVersion.findMany({
        where: { name },
        select: { version: true },
        orderBy: { version: 'asc' },
      });
      return rows.map((row) => row.version);
    },
    async publish(name, archive, passTypeIdentifier, now) {
      // Two uploads of one name at once: the second's insert meets the first's primary key and takes the next number.
      for (let attempt = 0; ; attempt++) {
        try {
          const rows = await prisma.$queryRaw<Array<{ version: number }>>`
            INSERT INTO template_versions (name, version, archive, pass_type_identifier, created_at)
            SELECT ${name}, coalesce(max(version), 0) + 1, ${Uint8Array.from(archive)}, ${passTypeIdentifier}, ${now}
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
      // One statement, so that a pass made from the template meanwhile is either seen here or fails to find it.
      const which = version === undefined ? Prisma.empty : Prisma.sql`AND version = ${version}`;
      const usedBy = version === undefined ? Prisma.empty : Prisma.sql`AND template_version = ${version}`;
      const removed = await prisma.$executeRaw`
        DELETE FROM template_versions WHERE name = ${name} ${which}
          AND NOT EXISTS (SELECT 1 FROM passes WHERE template = ${name} AND template_version IS NOT NULL ${usedBy})`;
      if (removed > 0) return 'removed';
      const exists = await prisma.templateVersion.count({
        where: { name, ...(version === undefined ? {} : { version }) },
      });
      return exists > 0 ? 'in-use' : 'absent';
    },
  };
}
