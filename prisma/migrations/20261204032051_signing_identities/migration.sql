-- Pass type identities added through the admin API, beside those of CERTIFICATES_DIR. Private keys are stored
-- sealed (AES-256-GCM under IDENTITY_ENCRYPTION_KEY), never in clear.
-- CreateTable
CREATE TABLE "signing_identities" (
    "pass_type_identifier" TEXT NOT NULL,
    "team_identifier" TEXT NOT NULL,
    "signer_cert" TEXT NOT NULL,
    "sealed_signer_key" BYTEA NOT NULL,
    "wwdr" TEXT NOT NULL,
    "not_after" TIMESTAMPTZ(3) NOT NULL,
    "apns_key_id" TEXT,
    "apns_team_id" TEXT,
    "sealed_apns_key" BYTEA,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "signing_identities_pkey" PRIMARY KEY ("pass_type_identifier")
);
