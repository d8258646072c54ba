import { z } from 'zod';
import {
  changeMessagesSchema,
  fieldValuesSchema,
  passOverridesSchema,
  passStringsSchema,
} from '../../passes/pass-content.js';
import { PASS_IMAGE_NAME } from '../../passes/pass-images.js';
import { storableText } from '../../storable-text.js';
import { identifier, passParams } from '../wallet/schemas.js';

/** A template's name in a body or query: storable, since a bulk job stores it and the pass list queries by it. */
const templateName = storableText().min(1).max(100);

export const newPassBody = z
  .object({
    passTypeIdentifier: identifier('passTypeIdentifier').optional().meta({
      description: 'Which identity signs and pushes it (GET /admin/identities); the primary one when absent',
    }),
    template: templateName,
    serialNumber: identifier('serialNumber').optional(),
    fields: fieldValuesSchema.optional(),
    pass: passOverridesSchema.optional(),
    changeMessages: changeMessagesSchema.optional(),
    strings: passStringsSchema.optional(),
  })
  .strict()
  // x-examples, not examples: zod drops `examples` from the input schema of a schema with transforms inside.
  .meta({
    'x-examples': {
      ticket: {
        summary: 'An event ticket with a QR code',
        value: {
          template: 'event',
          serialNumber: 'ticket-0001',
          fields: { event: 'Concert', seat: '12' },
          pass: { barcodes: [{ format: 'PKBarcodeFormatQR', message: 'ticket-0001' }] },
          changeMessages: { seat: 'Your seat is now %@' },
          strings: { de: { Seat: 'Platz' } },
        },
      },
      loyalty: {
        summary: 'A loyalty card; the serial number is generated',
        value: { template: 'loyalty', fields: { points: 120 } },
      },
    },
  });

/** A change of a pass, as PATCH takes it and as the `change` of a bulk change. */
const passChange = z
  .object({
    fields: fieldValuesSchema.optional(),
    pass: passOverridesSchema.optional(),
    changeMessages: changeMessagesSchema.optional(),
    strings: passStringsSchema.optional(),
    templateVersion: z.number().int().min(1).max(2_147_483_647).optional().meta({
      description: 'Move the pass to this version of its (uploaded) template, e.g. one just published',
    }),
  })
  .strict()
  .refine(
    (change) =>
      change.fields || change.pass || change.changeMessages || change.strings || change.templateVersion,
    { message: 'nothing to change: give fields, pass, changeMessages, strings or templateVersion' },
  );

// PATCH's body with its named examples; a bulk change's `change` is passChange itself, because nested in another
// body the named examples would be written as the value of `change`, which is no change at all.
export const passChangeBody = passChange.meta({
  'x-examples': {
    seat: {
      summary: 'A new seat, announced on the lock screen',
      value: { fields: { seat: '14' }, changeMessages: { seat: 'Your seat is now %@' } },
    },
    voided: { summary: 'Void the pass', value: { pass: { voided: true } } },
  },
});

/** POST /admin/passes/bulk: which passes (serials, or a template and field values) and the change, as PATCH takes it. */
export const bulkChangeBody = z
  .object({
    select: z.union([
      z
        .object({
          passTypeIdentifier: identifier('passTypeIdentifier')
            .optional()
            .meta({ description: 'Their pass type identifier; the primary identity when absent' }),
          serialNumbers: z.array(identifier('serialNumber')).max(100_000),
        })
        .strict()
        .meta({ description: 'These passes of one pass type identifier' }),
      z
        .object({ template: templateName, fields: fieldValuesSchema.optional() })
        .strict()
        .meta({ description: 'Every pass of the template whose stored field values equal these' }),
    ]),
    change: passChange,
  })
  .strict()
  .meta({
    'x-examples': {
      gate: {
        summary: 'A gate change for every ticket of one event',
        value: {
          select: { template: 'event', fields: { event: 'Concert' } },
          change: { fields: { gate: 'B12' }, changeMessages: { gate: 'Your gate is now %@' } },
        },
      },
    },
  });

export const bulkPreview = z.looseObject({
  passes: z.number().int().meta({ description: 'Passes the selection matches now' }),
  devices: z
    .number()
    .int()
    .meta({ description: 'Devices registered for them: the pushes the change would send' }),
});

export const bulkJobParams = z.object({ jobId: z.uuid() }).strict();

export const bulkJobView = z.looseObject({
  jobId: z.string(),
  status: z.enum(['queued', 'running', 'done', 'failed']),
  matched: z
    .number()
    .int()
    .nullable()
    .meta({ description: 'Passes selected; null until the job has started' }),
  done: z.number().int(),
  failed: z.number().int(),
  errors: z
    .array(z.looseObject({ serialNumber: z.string().nullable(), message: z.string() }))
    .meta({ description: 'The first few failures' }),
  createdAt: z.string().meta({ format: 'date-time' }),
  startedAt: z.string().nullable().meta({ format: 'date-time' }),
  finishedAt: z.string().nullable().meta({ format: 'date-time' }),
});

/**
 * A page cursor's form, for the document: src/passes/passes.ts writes the last id's decimal digits in base64url (no
 * padding) and refuses what does not read back as 1-19 digits. Each 3 digits are 4 characters, a last 1 or 2 digits
 * 2 or 3; the first character of a group is M (digit 0-3), N (4-7) or O (8-9), which limits the second.
 */
const cursorDoc = {
  description: 'The nextCursor of the previous page (opaque)',
  pattern:
    '^((?:[MN][DTjz]|O[DT])[AEIMQUYcgk][w-z0-5])*((?:[MN][AQgw]|O[AQ])|(?:[MN][DTjz]|O[DT])[AEIMQUYcgk])?$',
  // 18 digits (24 characters) at most: no id of this server is longer, and 19 digits can pass PostgreSQL's bigint.
  maxLength: 24,
};

export const listPassesQuery = z
  .object({
    template: templateName.optional(),
    limit: z.coerce.number().int().min(1).max(500).default(50),
    cursor: z.string().min(1).max(100).meta(cursorDoc).optional(),
  })
  .strict();

export const logsQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }).strict();

export const downloadQuery = z.object({
  expires: z.string().regex(/^\d{1,12}$/, 'expires must be a Unix time'),
  signature: z.string().min(1).max(100),
});

/*
 * Answers of the admin API, for the OpenAPI document; they also serialize the answers. Loose objects: a key added
 * to an answer is passed through rather than silently dropped.
 */
export const passView = z.looseObject({
  passTypeIdentifier: z.string(),
  serialNumber: z.string(),
  template: z.string(),
  templateVersion: z
    .number()
    .int()
    .nullable()
    .meta({ description: 'The uploaded template version it is made from; null for a MODELS_DIR template' }),
  fields: z.record(z.string(), z.unknown()),
  pass: z.record(z.string(), z.unknown()).meta({ description: 'The top-level pass.json overrides' }),
  changeMessages: z.record(z.string(), z.string()),
  strings: z
    .record(z.string(), z.record(z.string(), z.string()))
    .meta({ description: "The pass's own pass.strings entries by language" }),
  version: z.number().int(),
  lastModified: z.string().meta({ format: 'date-time' }),
  createdAt: z.string().meta({ format: 'date-time' }),
  updatedAt: z.string().meta({ format: 'date-time' }),
  images: z
    .array(z.string())
    .meta({ description: "The file names of the pass's own images (PUT .../images/{image}), sorted" }),
  registeredDevices: z.number().int(),
  downloadUrl: z.string().meta({ description: 'Signed, expiring link to the .pkpass; needs no admin token' }),
});

export const passPage = z.looseObject({
  passes: z.array(passView),
  nextCursor: z
    .string()
    .meta(cursorDoc)
    .nullable()
    .meta({ description: 'Pass it back as cursor; null on the last page' }),
});

export const templateView = z.looseObject({
  name: z.string(),
  version: z.number().int().nullable().meta({
    description:
      'Uploaded through this API: its latest version (what new passes are made from); null for MODELS_DIR',
  }),
  versions: z.array(z.number().int()).meta({ description: "An uploaded template's versions, ascending" }),
  source: z.enum(['models', 'api']).meta({ description: 'models: a MODELS_DIR folder; api: uploaded here' }),
  passTypeIdentifier: z.string().nullable().meta({
    description:
      'The identity its passes belong to; null: any (the primary one unless the pass names another)',
  }),
  style: z.string(),
  fieldKeys: z.array(z.string()),
  images: z
    .array(z.string())
    .meta({ description: 'Its image files (icon.png, logo@2x.png, de.lproj/logo.png, …)' }),
  usable: z
    .boolean()
    .meta({ description: 'Whether passes can be made from it: Wallet accepts what it makes' }),
  problem: z.string().nullable().meta({
    description: 'What Wallet (or the signer) would refuse in its passes, naming the key; null when usable',
  }),
  conversions: z.array(z.string()).meta({
    description:
      'What reading the model rewrote in its pass.json (its override file, hex colours, the deprecated barcode)',
  }),
});

export const templatesAnswer = z.looseObject({ templates: z.array(templateView) });

export const templateParams = z.object({ name: templateName }).strict();
export const publishTemplateQuery = z
  .object({
    passTypeIdentifier: identifier('passTypeIdentifier')
      .optional()
      .meta({ description: "The identity its passes belong to (a brand's template); any when absent" }),
  })
  .strict();
export const templateVersionParams = z
  .object({ name: templateName, version: z.coerce.number().int().min(1).max(2_147_483_647) })
  .strict();

export const zipBody = z
  .custom<Buffer>(
    (body) => Buffer.isBuffer(body),
    'the body must be the zip of the .pass folder (Content-Type: application/zip)',
  )
  // Described by hand: zod has no schema for a Buffer that JSON Schema can express.
  .meta({ type: 'string', format: 'binary' });

/** A certificate or key in PEM, as a JSON string (newlines as \n). */
const pemMember = (what: string) =>
  z
    .string()
    .min(1)
    .max(20_000)
    .meta({ description: `${what} in PEM` });
/** Apple's 10-character key and team identifiers. */
const appleId = (name: string) => z.string().regex(/^[A-Z0-9]{10}$/, `${name} must be 10 letters or digits`);

/** POST /admin/identities and PUT /admin/identities/{passTypeIdentifier}: a Pass Type ID certificate with its key. */
export const identityUploadBody = z
  .object({
    certificate: pemMember('The Pass Type ID certificate').optional(),
    privateKey: pemMember("The certificate's RSA private key (encrypted with passphrase, or not)").optional(),
    p12: z.base64().max(60_000).optional().meta({
      description: "Keychain's .p12 export of the certificate with its key, base64; instead of the two above",
    }),
    passphrase: z
      .string()
      .max(1024)
      .optional()
      .meta({ description: 'Decrypts privateKey or p12; not stored (the key is stored sealed instead)' }),
    wwdr: pemMember("Apple's WWDR intermediate certificate that issued it (G4)"),
    apns: z
      .discriminatedUnion('auth', [
        z
          .object({ auth: z.literal('certificate') })
          .strict()
          .meta({
            description:
              'Push with the Pass Type ID certificate (the default, as Apple documents for Wallet)',
          }),
        z
          .object({
            auth: z.literal('token'),
            key: pemMember('The .p8 APNs auth key'),
            keyId: appleId('keyId'),
            teamId: appleId('teamId')
              .optional()
              .meta({ description: "The key's team; the certificate's by default" }),
          })
          .strict()
          .meta({ description: 'Push with a .p8 key (provider tokens)' }),
      ])
      .optional(),
  })
  .strict()
  .superRefine((body, context) => {
    const pems = body.certificate !== undefined || body.privateKey !== undefined;
    if (body.p12 !== undefined && pems) {
      context.addIssue({ code: 'custom', message: 'give p12, or certificate and privateKey, not both' });
    } else if (body.p12 === undefined && (body.certificate === undefined || body.privateKey === undefined)) {
      context.addIssue({ code: 'custom', message: 'give certificate and privateKey, or p12' });
    }
  });

export const identityParams = z.object({ passTypeIdentifier: identifier('passTypeIdentifier') }).strict();

export const identityView = z.looseObject({
  passTypeIdentifier: z.string(),
  teamIdentifier: z.string(),
  source: z.enum(['configuration', 'api']).meta({
    description:
      'configuration: CERTIFICATES_DIR, SIGNER_*_PEM or the development identity; api: added or rotated through this API',
  }),
  isDevelopment: z
    .boolean()
    .meta({ description: 'The generated development identity: its passes do not install on devices' }),
  notAfter: z
    .string()
    .meta({ format: 'date-time', description: 'When the Pass Type ID certificate expires' }),
  daysLeft: z.number().int().meta({ description: 'Whole days until then; negative once it has expired' }),
  expired: z.boolean(),
  certificateSha256: z.string().meta({ description: 'SHA-256 of the certificate in use (hex)' }),
  apns: z.looseObject({
    auth: z.enum(['configured', 'certificate', 'token']).meta({
      description: 'configured: as APNS_AUTH says (configured identities); certificate or token: its own',
    }),
    keyId: z.string().optional(),
    teamId: z.string().optional(),
  }),
});

export const identitiesAnswer = z.looseObject({ identities: z.array(identityView) });

export const logsAnswer = z.looseObject({
  logs: z.array(z.looseObject({ message: z.string(), createdAt: z.string().meta({ format: 'date-time' }) })),
});

export const pushesAnswer = z.looseObject({
  // A plain object: OutboxStats is an interface, which a loose object's index signature does not accept.
  outbox: z.object({
    depth: z.number().int(),
    due: z.number().int(),
    claimed: z.number().int(),
    oldestDueAgeMs: z.number().nullable(),
  }),
  failures: z.record(z.string(), z.number().int()).meta({ description: 'Failed pushes by APNs reason' }),
});

/** A pass in the admin API. */
export const adminPassPath = '/admin/passes/:passTypeIdentifier/:serialNumber';

/** One of a pass's own images: its bundle file name. */
export const passImageParams = passParams.extend({
  image: z
    .string()
    .regex(
      PASS_IMAGE_NAME,
      'an image is icon, logo, strip, thumbnail, background or footer, with @2x or @3x, and .png (e.g. thumbnail@2x.png)',
    ),
});

/** A PNG file as the request body (the image routes parse image/png as bytes). */
export const pngBody = z
  .custom<Buffer>((body) => Buffer.isBuffer(body), 'the body must be the PNG file (Content-Type: image/png)')
  // Described by hand: zod has no schema for a Buffer that JSON Schema can express.
  .meta({ type: 'string', format: 'binary' });
