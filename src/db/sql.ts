import type { PrismaClient } from './generated/client.js';

export type { PrismaClient };

/**
 * One statement with $1… parameters, past Prisma, straight to the driver (pg's pool, which Prisma shares, or PGlite).
 * For the statements every Wallet request runs (Prisma's raw queries cost about 3× bare pg's here) and for the
 * transactions of changes (Repositories.inTransaction). Rows come as the driver gives them, so the statements cast
 * what differs between the two (bigint ids to text).
 */
export type SqlQuery = <Row extends Record<string, unknown>>(
  sql: string | PreparedStatement,
  params: unknown[],
) => Promise<Row[]>;

/**
 * A statement that Wallet's devices run on every request, with a name: on PostgreSQL, each pooled connection
 * parses and plans it once (a prepared statement, which pg keeps per connection by name) instead of at every
 * request. Planning cost PostgreSQL more than running these statements (bench/RESULTS.md). Its text must never
 * change under the same name; PGlite and Prisma run the text as an ordinary statement.
 */
export interface PreparedStatement {
  readonly name: string;
  readonly text: string;
}

export const sqlText = (sql: string | PreparedStatement): string =>
  typeof sql === 'string' ? sql : sql.text;
