-- A pass's own images, by bundle file name, which replace its template's image of that name when it is signed.
-- Deleted with the pass.
-- CreateTable
CREATE TABLE "pass_images" (
    "pass_id" BIGINT NOT NULL,
    "name" TEXT NOT NULL,
    "bytes" BYTEA NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "pass_images_pkey" PRIMARY KEY ("pass_id","name")
);

-- AddForeignKey
ALTER TABLE "pass_images" ADD CONSTRAINT "pass_images_pass_id_fkey" FOREIGN KEY ("pass_id") REFERENCES "passes"("id") ON DELETE CASCADE ON UPDATE CASCADE;
