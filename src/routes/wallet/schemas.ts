import { z } from 'zod';
import { parseUpdateTag } from '../../passes/versions.js';

/*
 * Identifiers in Apple's paths: non-empty, at most 256 characters, no `/` (Fastify has decoded %2F by now) and
 * no control characters. They are looked up, never interpreted, so nothing else is refused.
 */
export const identifier = (name: string) =>
  z
    .string()
    .min(1, `${name} must not be empty`)
    .max(256, `${name} must be at most 256 characters`)
    .regex(/^[^/\p{Cc}]+$/u, `${name} must not contain "/" or control characters`);

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

export const updatableQuery = z
  .object({
    // The lastUpdated tag from our previous answer; an empty value counts as none.
    passesUpdatedSince: z
      .string()
      .refine(
        (tag) => tag === '' || parseUpdateTag(tag) !== undefined,
        'passesUpdatedSince must be a lastUpdated tag returned by this server',
      )
      .optional(),
  })
  .strict();

/** Apple's LogEntries object. Every message is a row: at most 100 a request (src/routes/wallet/log.ts). */
export const logEntriesBody = z
  .object({
    logs: z
      .array(z.string().max(10_000, 'each log message must be at most 10000 characters'))
      .max(100, 'logs must hold at most 100 messages'),
  })
  .strict();

export const serialNumbersResponse = z.object({
  serialNumbers: z.array(z.string()),
  lastUpdated: z.string(),
});

/** Apple's endpoints answer an empty JSON object on success. */
export const emptyObject = z.object({});

/** Where a device registers for, and unregisters from, a pass's update notifications. */
export const registrationPath =
  '/v1/devices/:deviceLibraryIdentifier/registrations/:passTypeIdentifier/:serialNumber';
