import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.js';
import { parseUpdateTag } from '../../src/passes/versions.js';
import { openTestDatabase } from '../support/database.js';

/*
 * parseUpdateTag accepts exactly the tags the database's pg_snapshot input accepts (among those of the tag
 * pattern), so a forged tag is a 400 and never a database error. Checked against the database itself: the embedded
 * PGlite, and PostgreSQL with TEST_DATABASE_URL.
 */
let database: Database;
beforeAll(async () => {
  database = await openTestDatabase();
});
afterAll(async () => {
  await database?.close();
});

async function databaseAccepts(tag: string): Promise<boolean> {
  try {
    await database.prisma.$queryRaw`SELECT ${tag}::text::pg_snapshot::text AS tag`;
    return true;
  } catch {
    return false;
  }
}

const epoch = 2n ** 32n;
const tags = [
  '1:1:',
  '5:9:5,6,8',
  '3:10:5,5',
  '0:5:',
  '5:3:',
  '3:10:2',
  '3:10:10',
  `1:${epoch}:`,
  `${epoch}:${epoch + 1n}:`,
  `${epoch + 1n}:${epoch + 1n}:`,
  `1:${epoch + 2n}:${epoch}`,
  `1:${2n * epoch}:`,
  `1:${2n ** 64n - 1n}:`,
];

describe('lastUpdated tags', () => {
  it.each(tags)('%s: accepted exactly when the database accepts it', async (tag) => {
    expect(parseUpdateTag(tag) !== undefined).toBe(await databaseAccepts(tag));
  });
});
