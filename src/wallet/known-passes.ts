import { everyPass, type PassChanges, passChangeKey } from '../db/pass-changes.js';
import type { PassCredentials } from '../db/passes.js';
import type { PassKey } from '../passes/passes.js';

export type { PassCredentials };

export interface KnownPasses {
  /**
   * The pass's current credentials: the remembered ones once the change feed has caught up to this call (so a
   * change committed before the request arrived is never missed), else load()ed from the database. A pass that
   * changes is forgotten when its notification arrives.
   */
  find(key: PassKey, load: () => Promise<PassCredentials | undefined>): Promise<PassCredentials | undefined>;
  /** Like find(), from memory only: undefined when the pass is not remembered (or remembered as absent). */
  remembered(key: PassKey): Promise<PassCredentials | undefined>;
  readonly size: number;
}

/** About 300 bytes each: 100,000 passes ≈ 30 MB. Oldest remembered first out. */
export const defaultKnownPasses = 100_000;

export function createKnownPasses(changes: PassChanges, maxPasses = defaultKnownPasses): KnownPasses {
  // null: no such pass. Remembered too, so an unknown pass is answered as fast as a wrong token (no timing tells
  // which serials exist); creating the pass notifies like changing it.
  const remembered = new Map<string, PassCredentials | null>();
  // Keys being loaded, and whether a change of theirs was told meanwhile: such a load may have read the version
  // before the change, so it is not remembered. `resets` does the same for "forget everything".
  const loading = new Map<string, { loads: number; changed: boolean }>();
  let resets = 0;
  changes.subscribe((key) => {
    if (key === everyPass) {
      remembered.clear();
      resets++;
      return;
    }
    remembered.delete(key);
    const load = loading.get(key);
    if (load) load.changed = true;
  });

  return {
    async find(pass, load) {
      const key = passChangeKey(pass.passTypeIdentifier, pass.serialNumber);
      const caughtUp = await changes.caughtUp();
      const known = caughtUp ? remembered.get(key) : undefined;
      if (known !== undefined) return known ?? undefined;
      const resetsBefore = resets;
      const loads = loading.get(key) ?? { loads: 0, changed: false };
      loading.set(key, loads);
      loads.loads++;
      try {
        const credentials = await load();
        if (caughtUp && !loads.changed && resets === resetsBefore) {
          remembered.set(key, credentials ?? null);
          if (remembered.size > maxPasses) remembered.delete(remembered.keys().next().value as string);
        }
        return credentials;
      } finally {
        if (--loads.loads === 0) loading.delete(key);
      }
    },
    async remembered(pass) {
      const caughtUp = await changes.caughtUp();
      return (
        (caughtUp && remembered.get(passChangeKey(pass.passTypeIdentifier, pass.serialNumber))) || undefined
      );
    },
    get size() {
      return remembered.size;
    },
  };
}
