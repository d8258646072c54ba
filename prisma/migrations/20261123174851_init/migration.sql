-- CreateTable
CREATE TABLE "devices" (
    "id" BIGSERIAL NOT NULL,
    "device_library_identifier" TEXT NOT NULL,
    "push_token" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "devices_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "passes" (
    "id" BIGSERIAL NOT NULL,
    "pass_type_identifier" TEXT NOT NULL,
    "serial_number" TEXT NOT NULL,
    "authentication_token" TEXT NOT NULL,
    "template" TEXT NOT NULL,
    "fields" JSONB NOT NULL DEFAULT '{}',
    "overrides" JSONB NOT NULL DEFAULT '{}',
    "change_messages" JSONB NOT NULL DEFAULT '{}',
    "version" INTEGER NOT NULL DEFAULT 1,
    "last_modified" TIMESTAMPTZ(0) NOT NULL,
    "update_xid" BIGINT NOT NULL DEFAULT ((pg_current_xact_id())::text)::bigint,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "passes_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "registrations" (
    "device_id" BIGINT NOT NULL,
    "pass_id" BIGINT NOT NULL,
    "registered_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "registrations_pkey" PRIMARY KEY ("device_id","pass_id")
);

-- CreateTable
CREATE TABLE "pass_bundles" (
    "pass_id" BIGINT NOT NULL,
    "version" INTEGER NOT NULL,
    "bytes" BYTEA NOT NULL,
    "signed_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "pass_bundles_pkey" PRIMARY KEY ("pass_id")
);

-- CreateTable
CREATE TABLE "push_outbox" (
    "id" BIGSERIAL NOT NULL,
    "push_token" TEXT NOT NULL,
    "pass_type_identifier" TEXT NOT NULL,
    "enqueued_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "due_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "claimed_until" TIMESTAMPTZ(3),
    "last_error" TEXT,

    CONSTRAINT "push_outbox_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "device_logs" (
    "id" BIGSERIAL NOT NULL,
    "message" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "device_logs_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "devices_device_library_identifier_key" ON "devices"("device_library_identifier");

-- CreateIndex
CREATE INDEX "passes_template_id_idx" ON "passes"("template", "id");

-- CreateIndex
CREATE UNIQUE INDEX "passes_pass_type_identifier_serial_number_key" ON "passes"("pass_type_identifier", "serial_number");

-- CreateIndex
CREATE INDEX "registrations_pass_id_idx" ON "registrations"("pass_id");

-- CreateIndex
CREATE INDEX "push_outbox_due_at_idx" ON "push_outbox"("due_at");

-- CreateIndex
CREATE INDEX "push_outbox_push_token_pass_type_identifier_idx" ON "push_outbox"("push_token", "pass_type_identifier");

-- AddForeignKey
ALTER TABLE "registrations" ADD CONSTRAINT "registrations_device_id_fkey" FOREIGN KEY ("device_id") REFERENCES "devices"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "registrations" ADD CONSTRAINT "registrations_pass_id_fkey" FOREIGN KEY ("pass_id") REFERENCES "passes"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "pass_bundles" ADD CONSTRAINT "pass_bundles_pass_id_fkey" FOREIGN KEY ("pass_id") REFERENCES "passes"("id") ON DELETE CASCADE ON UPDATE CASCADE;
