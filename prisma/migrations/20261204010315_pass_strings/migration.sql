-- A pass's own pass.strings entries by language, merged with its template's when it is signed. Servers of the
-- previous release neither read nor write the column; its default keeps their passes as they were.
-- AlterTable
ALTER TABLE "passes" ADD COLUMN "strings" JSONB NOT NULL DEFAULT '{}';
