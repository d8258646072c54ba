/*
 * How a pass's versions are told apart, by Wallet and by us.
 *
 * Last-Modified: HTTP dates have whole seconds, and Wallet sends back If-Modified-Since. Each change sets
 * last_modified = max(now truncated to the second, previous + 1 s), so it strictly increases even for two changes
 * within one second; otherwise the second change would be answered 304 and never reach the device.
 *
 * lastUpdated tags (GET …/registrations/{passTypeIdentifier}?passesUpdatedSince=tag): every change records the
 * PostgreSQL transaction id that made it (update_xid = pg_current_xact_id()). A tag is the snapshot that answered
 * the list request (pg_current_snapshot(), as text `xmin:xmax:running,ids`), and the next request returns the
 * passes whose update_xid is not visible in that snapshot (pg_visible_in_snapshot): exactly the changes that had
 * not committed when the device got its tag, including changes that began before it. Timestamps or sequences
 * compared with `>` miss those, because transactions commit out of order; a snapshot's xmin alone would be safe
 * but re-lists changes for as long as any older transaction anywhere in the cluster stays open.
 */
const updateTagPattern = /^\d{1,20}:\d{1,20}:(\d{1,20}(,\d{1,20})*)?$/;

const maxXid = 2n ** 64n - 1n;

/**
 * Whether a 64-bit transaction id is one PostgreSQL's pg_snapshot input takes as xmin or xmax
 * (FullTransactionIdIsValid): its low 32 bits, the xid within its epoch, are not 0 (InvalidTransactionId).
 * PostgreSQL never hands such an id out, so 4294967296 (epoch 1, xid 0) is refused as a forged tag.
 */
function isValidFullXid(xid: bigint): boolean {
  return xid <= maxXid && xid % 2n ** 32n !== 0n;
}

/**
 * A tag this server handed out (a PostgreSQL snapshot in text form), or undefined for anything else. Checked as
 * PostgreSQL's pg_snapshot input (parse_snapshot) checks it: xmin and xmax valid 64-bit ids, xmin <= xmax, running
 * ids ascending within [xmin, xmax). So a forged tag is a 400 here, never a database error: whether PostgreSQL
 * would reach the cast depends on the plan (PGlite folds it even when no row is read).
 */
export function parseUpdateTag(tag: string): string | undefined {
  if (tag.length > maxUpdateTagLength || !updateTagPattern.test(tag)) return undefined;
  const [xmin = 0n, xmax = 0n, ...running] = tag.split(/[:,]/).filter(Boolean).map(BigInt);
  if (!isValidFullXid(xmin) || !isValidFullXid(xmax) || xmin > xmax) return undefined;
  let previous = xmin;
  for (const xid of running) {
    if (xid < previous || xid >= xmax) return undefined;
    previous = xid;
  }
  return tag;
}

/** A snapshot lists the transactions running at the time: bounded by the server's connections. */
export const maxUpdateTagLength = 16_384;

export function truncateToSecond(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

/** Parses an HTTP date (If-Modified-Since); undefined for anything that is not one. */
export function parseHttpDate(value: string | undefined): Date | undefined {
  if (!value) return undefined;
  const time = Date.parse(value);
  return Number.isNaN(time) ? undefined : new Date(time);
}
