-- The push token moves from the device to each registration (issue 14). Apple's register request carries the
-- push token with each pass (POST /v1/devices/{d}/registrations/{type}/{serial}, body {"pushToken"}); kept on the
-- device, a registration of pass B under a victim's device library identifier replaced the token that pass A's
-- pushes went to. Kept per registration, only a registration of pass A itself (with pass A's authentication
-- token) can change where pass A's pushes go.

-- AlterTable: added nullable, filled from the device's token (the token every registration of the device had),
-- then made NOT NULL.
ALTER TABLE "registrations" ADD COLUMN "push_token" TEXT;

UPDATE "registrations" r SET "push_token" = d."push_token" FROM "devices" d WHERE d."id" = r."device_id";

ALTER TABLE "registrations" ALTER COLUMN "push_token" SET NOT NULL;

-- CreateIndex: APNs's 410 names a token; its registrations are found by it.
CREATE INDEX "registrations_push_token_idx" ON "registrations"("push_token");

-- For the rolling upgrade only (docs/operations.md, Upgrading): servers of the previous release insert
-- registrations without push_token, and keep writing and reading devices.push_token (this release writes it too,
-- and reads it nowhere). Their registrations take the device's token, as they meant. The next release drops this
-- trigger, its function and devices.push_token.
CREATE FUNCTION registration_push_token_from_device() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.push_token IS NULL THEN
    SELECT push_token INTO NEW.push_token FROM devices WHERE id = NEW.device_id;
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER registrations_push_token_from_device
  BEFORE INSERT ON registrations FOR EACH ROW EXECUTE FUNCTION registration_push_token_from_device();
