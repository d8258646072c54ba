-- Templates uploaded through the admin API, one row per published version (immutable), and the version each pass
-- is built from (null: a MODELS_DIR template). A nullable column without a default: adding it rewrites nothing.
-- AlterTable
ALTER TABLE "passes" ADD COLUMN     "template_version" INTEGER;

-- CreateTable
CREATE TABLE "template_versions" (
    "name" TEXT NOT NULL,
    "version" INTEGER NOT NULL,
    "archive" BYTEA NOT NULL,
    "pass_type_identifier" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "template_versions_pkey" PRIMARY KEY ("name","version")
);
