-- POST /v1/log's messages are deleted after DEVICE_LOG_RETENTION_DAYS (src/wallet/device-log-retention.ts): the
-- index finds them without reading the whole table.
-- CreateIndex
CREATE INDEX "device_logs_created_at_idx" ON "device_logs"("created_at");
