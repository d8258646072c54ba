/*
 * How a pass's versions are told apart, by Wallet and by us.
 *
 * Last-Modified: HTTP dates have whole seconds, and Wallet sends back If-Modified-Since. Each change sets
 * last_modified = max(now truncated to the second, previous + 1 s), so it strictly increases even for two changes
 * within one second; otherwise the second change would be answered 304 and never reach the device.
 *
 * lastUpdated tags (GET …/registrations/{passTypeIdentifier}?passesUpdatedSince=tag): every change records the
 * PostgreSQL transaction id that made it (update_xid = pg_current_xact_id()). A tag is the xmin of the snapshot
 * that answered the list request: every transaction that was not visible to that snapshot (still running, or
 * started later) has an id >= xmin. So `update_xid >= tag` returns every change that committed after the device
 * got its tag, including changes that began before it: timestamps or sequences compared with `>` miss those,
 * because they commit out of order. The cost is that a change may be listed once more (Wallet then gets a 304).
 */
export function parseUpdateTag(tag: string): bigint | undefined {
  return /^\d{1,19}$/.test(tag) ? BigInt(tag) : undefined;
}

export function truncateToSecond(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

/** Parses an HTTP date (If-Modified-Since); undefined for anything that is not one. */
export function parseHttpDate(value: string | undefined): Date | undefined {
  if (!value) return undefined;
  const time = Date.parse(value);
  return Number.isNaN(time) ? undefined : new Date(time);
}
