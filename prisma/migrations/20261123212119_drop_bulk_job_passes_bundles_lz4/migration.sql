-- A bulk job now writes each page in one transaction with its cursor (src/passes/bulk-page.ts): a page commits
-- whole or not at all, so the per-pass markers that kept a resumed page from changing a pass twice are not needed.

-- DropForeignKey
ALTER TABLE "bulk_job_passes" DROP CONSTRAINT "bulk_job_passes_job_id_fkey";

-- DropTable
DROP TABLE "bulk_job_passes";

-- Bundles (≈140 kB with images) are compressed by TOAST on every write. With pglz, inserting 200 such bundles took
-- ≈ 500 ms of database time here, with lz4 ≈ 150 ms for nearly the same size (bench/RESULTS.md, Bulk change): most
-- of a bulk change's database time. Rows written before keep pglz until rewritten. Where the server has no lz4
-- (PGlite), the column keeps the default. Not in schema.prisma: Prisma does not model a column's compression, so
-- its diffs neither see nor undo this.
DO $$
BEGIN
  ALTER TABLE pass_bundles ALTER COLUMN bytes SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
  RAISE NOTICE 'lz4 not available: pass_bundles.bytes keeps the default compression';
END
$$;
