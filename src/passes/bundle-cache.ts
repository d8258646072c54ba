/**
 * Signed bundles kept in this process's memory, keyed by pass id AND version, bounded in bytes (least recently
 * used first out). The database stays the authority on which version is current: a caller asks for exactly the
 * current version (src/wallet/known-passes.ts, kept fresh by the database's change notifications), so an entry of
 * an older version is never served, only left to age out. Several instances each keep their own.
 */
export interface BundleCache {
  get(passId: bigint, version: number): Buffer | undefined;
  set(passId: bigint, version: number, bytes: Buffer): void;
  readonly bytes: number;
  readonly size: number;
}

/** 64 MB: about 450 bundles of the 140 KB `event` template, or thousands of image-light passes. */
export const defaultBundleCacheBytes = 64 * 1024 * 1024;

export function createBundleCache(maxBytes = defaultBundleCacheBytes): BundleCache {
  // Per pass id, the newest version seen: an older version's entry is replaced, not kept beside it.
  const entries = new Map<bigint, { version: number; bytes: Buffer }>();
  let total = 0;
  const remove = (passId: bigint) => {
    const entry = entries.get(passId);
    if (!entry) return;
    entries.delete(passId);
    total -= entry.bytes.length;
  };
  return {
    get(passId, version) {
      const entry = entries.get(passId);
      if (!entry || entry.version !== version) return undefined;
      // Maps iterate in insertion order: re-inserting makes this the most recently used.
      entries.delete(passId);
      entries.set(passId, entry);
      return entry.bytes;
    },
    set(passId, version, bytes) {
      const current = entries.get(passId);
      if (current && current.version > version) return;
      remove(passId);
      if (bytes.length > maxBytes) return;
      while (total + bytes.length > maxBytes) {
        const oldest = entries.keys().next();
        if (oldest.done) break;
        remove(oldest.value);
      }
      entries.set(passId, { version, bytes });
      total += bytes.length;
    },
    get bytes() {
      return total;
    },
    get size() {
      return entries.size;
    },
  };
}
