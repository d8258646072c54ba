-- Coalescing of pushes (hand-written: Prisma's schema cannot express a partial unique index).
--
-- A Wallet update notification carries no content (an empty `{}` payload): it only tells the device to ask
-- which passes of that pass type changed. So several changes before the push goes out need ONE push per push
-- token and pass type. enqueuePushes inserts with
--   ON CONFLICT (push_token, pass_type_identifier) WHERE claimed_until IS NULL DO NOTHING.
-- Only unclaimed rows take part: a change that arrives while a push for the token is in flight (its row is
-- claimed, claimed_until set) must create a new row, since the device may already have fetched before the change.

-- Collapse duplicates left by the earlier insert-always behaviour, keeping the oldest (earliest due) row.
DELETE FROM "push_outbox" AS newer
USING "push_outbox" AS older
WHERE newer."claimed_until" IS NULL
  AND older."claimed_until" IS NULL
  AND newer."push_token" = older."push_token"
  AND newer."pass_type_identifier" = older."pass_type_identifier"
  AND newer."id" > older."id";

-- CreateIndex
CREATE UNIQUE INDEX "push_outbox_unclaimed_push_token_pass_type_identifier_key"
  ON "push_outbox" ("push_token", "pass_type_identifier")
  WHERE "claimed_until" IS NULL;

-- Pushes given up on (APNs refused them for good, or retries ran out), kept to count by reason. The push token
-- is stored only as a SHA-256 hash: it is a secret of the device.
-- CreateTable
CREATE TABLE "push_failures" (
    "id" BIGSERIAL NOT NULL,
    "push_token_hash" TEXT NOT NULL,
    "pass_type_identifier" TEXT NOT NULL,
    "reason" TEXT NOT NULL,
    "attempts" INTEGER NOT NULL,
    "failed_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "push_failures_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "push_failures_reason_idx" ON "push_failures" ("reason");
