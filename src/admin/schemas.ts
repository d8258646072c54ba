import { z } from 'zod';
import { changeMessagesSchema, fieldValuesSchema, passOverridesSchema } from '../passes/pass-content.js';
import { identifier } from '../wallet/schemas.js';

export const newPassBody = z
  .object({
    template: z.string().min(1).max(100),
    serialNumber: identifier('serialNumber').optional(),
    fields: fieldValuesSchema.optional(),
    pass: passOverridesSchema.optional(),
  })
  .strict();

export const passChangeBody = z
  .object({
    fields: fieldValuesSchema.optional(),
    pass: passOverridesSchema.optional(),
    changeMessages: changeMessagesSchema.optional(),
  })
  .strict()
  .refine((change) => change.fields || change.pass || change.changeMessages, {
    message: 'nothing to change: give fields, pass or changeMessages',
  });

export const listPassesQuery = z
  .object({
    template: z.string().min(1).max(100).optional(),
    limit: z.coerce.number().int().min(1).max(500).default(50),
    cursor: z.string().min(1).max(100).optional(),
  })
  .strict();

export const logsQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }).strict();

export const downloadQuery = z.object({
  expires: z.string().regex(/^\d{1,12}$/, 'expires must be a Unix time'),
  signature: z.string().min(1).max(100),
});
