/** PostgreSQL's unique_violation (23505), as Prisma reports it (model API or raw queries) with either adapter. */
export function isUniqueViolation(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const { code, meta } = error as Error & {
    code?: unknown;
    meta?: { code?: unknown; driverAdapterError?: unknown };
  };
  if (code === 'P2002' || code === '23505' || meta?.code === '23505') return true;
  return /23505|unique constraint|duplicate key/i.test(`${error.message} ${JSON.stringify(meta ?? {})}`);
}
