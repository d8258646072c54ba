import { Prisma } from './generated/client.js';
import type { PrismaClient } from './sql.js';

/** A stored identity as the database holds it: certificates in PEM, keys sealed (src/signing/sealed-keys.ts). */
export interface IdentityRecord {
  passTypeIdentifier: string;
  teamIdentifier: string;
  signerCert: string;
  sealedSignerKey: Uint8Array;
  wwdr: string;
  notAfter: Date;
  /** Token auth to APNs; absent for certificate auth with signerCert. */
  apnsToken?: { keyId: string; teamId: string; sealedKey: Uint8Array } | undefined;
  updatedAt: Date;
}

/** The pass type identities added through the admin API. */
export interface IdentitiesRepository {
  list(): Promise<IdentityRecord[]>;
  /** When each stored identity last changed: a cheap read to tell whether list() is needed again. */
  versions(): Promise<Map<string, number>>;
  /**
   * Stores the identity: `add` only when none of its pass type identifier is stored (false then), `replace` in any
   * case (a rotation). True when a row was added.
   */
  save(record: Omit<IdentityRecord, 'updatedAt'>, now: Date, mode: 'add' | 'replace'): Promise<boolean>;
  /**
   * Removes it, unless passes of its pass type identifier remain and evenWithPasses is false (they would have
   * nothing to be signed with): 'removed', 'in-use' or 'absent'.
   */
  remove(
    passTypeIdentifier: string,
    options: { evenWithPasses: boolean },
  ): Promise<'removed' | 'in-use' | 'absent'>;
}

type Row = Awaited<ReturnType<PrismaClient['signingIdentityRow']['findMany']>>[number];

function toRecord(row: Row): IdentityRecord {
  const { apnsKeyId, apnsTeamId, sealedApnsKey } = row;
  return {
    passTypeIdentifier: row.passTypeIdentifier,
    teamIdentifier: row.teamIdentifier,
    signerCert: row.signerCert,
    sealedSignerKey: row.sealedSignerKey,
    wwdr: row.wwdr,
    notAfter: row.notAfter,
    apnsToken:
      apnsKeyId && apnsTeamId && sealedApnsKey
        ? { keyId: apnsKeyId, teamId: apnsTeamId, sealedKey: sealedApnsKey }
        : undefined,
    updatedAt: row.updatedAt,
  };
}

const replaceRow = Prisma.sql`DO UPDATE SET team_identifier = EXCLUDED.team_identifier,
  signer_cert = EXCLUDED.signer_cert, sealed_signer_key = EXCLUDED.sealed_signer_key, wwdr = EXCLUDED.wwdr,
  not_after = EXCLUDED.not_after, apns_key_id = EXCLUDED.apns_key_id, apns_team_id = EXCLUDED.apns_team_id,
  sealed_apns_key = EXCLUDED.sealed_apns_key,
  -- Strictly later than the version another instance read, so that it reads the row again.
  updated_at = GREATEST(EXCLUDED.updated_at, i.updated_at + interval '1 millisecond')`;

export function createIdentitiesRepository(db: { prisma: PrismaClient }): IdentitiesRepository {
  const { prisma } = db;
  return {
    async list() {
      const rows = await prisma.signingIdentityRow.findMany({ orderBy: { passTypeIdentifier: 'asc' } });
      return rows.map(toRecord);
    },
    async versions() {
      const rows = await prisma.signingIdentityRow.findMany({
        select: { passTypeIdentifier: true, updatedAt: true },
      });
      return new Map(rows.map((row) => [row.passTypeIdentifier, row.updatedAt.getTime()]));
    },
    async save(record, now, mode) {
      const columns = {
        teamIdentifier: record.teamIdentifier,
        signerCert: record.signerCert,
        sealedSignerKey: Uint8Array.from(record.sealedSignerKey),
        wwdr: record.wwdr,
        notAfter: record.notAfter,
        apnsKeyId: record.apnsToken?.keyId ?? null,
        apnsTeamId: record.apnsToken?.teamId ?? null,
        sealedApnsKey: record.apnsToken ? Uint8Array.from(record.apnsToken.sealedKey) : null,
        updatedAt: now,
      };
      const rows = await prisma.$queryRaw<Array<{ added: boolean }>>`
        INSERT INTO signing_identities AS i (pass_type_identifier, team_identifier, signer_cert, sealed_signer_key,
          wwdr, not_after, apns_key_id, apns_team_id, sealed_apns_key, created_at, updated_at)
        VALUES (${record.passTypeIdentifier}, ${columns.teamIdentifier}, ${columns.signerCert},
          ${columns.sealedSignerKey}, ${columns.wwdr}, ${columns.notAfter}, ${columns.apnsKeyId},
          ${columns.apnsTeamId}, ${columns.sealedApnsKey}, ${now}, ${now})
        ON CONFLICT (pass_type_identifier) ${mode === 'add' ? Prisma.sql`DO NOTHING` : replaceRow}
        RETURNING (xmax = 0) AS added`;
      return rows[0]?.added === true;
    },
    async remove(passTypeIdentifier, options) {
      const removed = await prisma.$executeRaw`
        DELETE FROM signing_identities WHERE pass_type_identifier = ${passTypeIdentifier}
          AND (${options.evenWithPasses} OR NOT EXISTS (
            SELECT 1 FROM passes WHERE pass_type_identifier = ${passTypeIdentifier}))`;
      if (removed > 0) return 'removed';
      const exists = await prisma.signingIdentityRow.count({ where: { passTypeIdentifier } });
      return exists > 0 ? 'in-use' : 'absent';
    },
  };
}
