-- CreateTable
CREATE TABLE "bulk_jobs" (
    "id" UUID NOT NULL,
    "selection" JSONB NOT NULL,
    "change" JSONB NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'queued',
    "cursor" BIGINT NOT NULL DEFAULT 0,
    "matched" INTEGER,
    "done" INTEGER NOT NULL DEFAULT 0,
    "failed" INTEGER NOT NULL DEFAULT 0,
    "errors" JSONB NOT NULL DEFAULT '[]',
    "lease_until" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "started_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),

    CONSTRAINT "bulk_jobs_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "bulk_job_passes" (
    "job_id" UUID NOT NULL,
    "pass_id" BIGINT NOT NULL,

    CONSTRAINT "bulk_job_passes_pkey" PRIMARY KEY ("job_id","pass_id")
);

-- CreateIndex
CREATE INDEX "bulk_jobs_status_lease_until_idx" ON "bulk_jobs"("status", "lease_until");

-- AddForeignKey
ALTER TABLE "bulk_job_passes" ADD CONSTRAINT "bulk_job_passes_job_id_fkey" FOREIGN KEY ("job_id") REFERENCES "bulk_jobs"("id") ON DELETE CASCADE ON UPDATE CASCADE;
