import { z } from 'zod';
import { maxUpdateTagLength, parseUpdateTag } from '../../passes/versions.js';
import { storableText } from '../../storable-text.js';

/*
 * Identifiers in Apple's paths: non-empty, at most 256 characters, no `/` (Fastify has decoded %2F by now), no
 * control characters, storable text (src/storable-text.ts). They are looked up, never interpreted, so nothing else
 * is refused. The control characters (Unicode's Cc: U+0000-U+001F and U+007F-U+009F) are spelled as \x ranges
 * rather than \p{Cc}: the pattern goes into the OpenAPI document, and \x escapes mean the same in ECMA-262 without
 * the u flag and in other languages' regex engines, where \p{Cc} is unknown or needs flags.
 */
export const identifier = (name: string) =>
  storableText()
    .min(1, `${name} must not be empty`)
    .max(256, `${name} must be at most 256 characters`)
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point.
    .regex(/^[^/\x00-\x1F\x7F-\x9F]+$/, `${name} must not contain "/" or control characters`);

export const passParams = z.object({
  passTypeIdentifier: identifier('passTypeIdentifier'),
  serialNumber: identifier('serialNumber'),
});

export const registrationParams = passParams.extend({
  deviceLibraryIdentifier: identifier('deviceLibraryIdentifier'),
});

export const deviceParams = z.object({
  deviceLibraryIdentifier: identifier('deviceLibraryIdentifier'),
  passTypeIdentifier: identifier('passTypeIdentifier'),
});

/** Apple's PushToken object. APNs device tokens are hexadecimal (64 characters today; Apple may lengthen them). */
export const pushTokenBody = z
  .object({
    pushToken: z
      .string()
      .regex(
        /^[0-9a-fA-F]{8,256}$/,
        'pushToken must be the hexadecimal APNs device token (8 to 256 characters)',
      ),
  })
  .strict();

/**
 * The lastUpdated tag's form, for the document (src/passes/versions.ts checks it: parseUpdateTag). The server also
 * checks the ids' order, which a pattern cannot say; [0-9] rather than \d, which other engines read as any digit.
 */
const lastUpdatedTagDoc = {
  description:
    'A lastUpdated tag returned by this server: xmin:xmax:running-ids (a PostgreSQL snapshot), ' +
    '0 < xmin <= xmax < 2^64, running ids ascending within [xmin, xmax). Empty in a query: none.',
  pattern: '^([0-9]{1,20}:[0-9]{1,20}:([0-9]{1,20}(,[0-9]{1,20})*)?)?$',
  maxLength: maxUpdateTagLength,
};

export const updatableQuery = z
  .object({
    // The lastUpdated tag from our previous answer; an empty value counts as none.
    passesUpdatedSince: z
      .string()
      .refine(
        (tag) => tag === '' || parseUpdateTag(tag) !== undefined,
        'passesUpdatedSince must be a lastUpdated tag returned by this server',
      )
      .meta(lastUpdatedTagDoc)
      .optional(),
  })
  .strict();

/** Apple's LogEntries object. Every message is a row: at most 100 a request (src/routes/wallet/log.ts). */
export const logEntriesBody = z
  .object({
    logs: z
      .array(storableText().max(10_000, 'each log message must be at most 10000 characters'))
      .max(100, 'logs must hold at most 100 messages'),
  })
  .strict();

export const serialNumbersResponse = z.object({
  serialNumbers: z.array(z.string()),
  lastUpdated: z.string().meta(lastUpdatedTagDoc),
});

/** Apple's endpoints answer an empty JSON object on success. */
export const emptyObject = z.object({});

/** Where a device registers for, and unregisters from, a pass's update notifications. */
export const registrationPath =
  '/v1/devices/:deviceLibraryIdentifier/registrations/:passTypeIdentifier/:serialNumber';
