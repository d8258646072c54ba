import { z } from 'zod';

/*
 * The rules every string the server stores or queries by obeys, in one place: the input schemas (pass content, the
 * admin and Wallet routes) build their strings from storableText() or pass theirs through storable().
 *
 * - No U+0000: PostgreSQL's text and jsonb cannot hold it ("invalid byte sequence" / "unsupported Unicode escape
 *   sequence"), so it would fail in the database, as a 500, instead of here as a 400 naming the field.
 * - Well-formed Unicode (String.prototype.isWellFormed): a lone UTF-16 surrogate (JSON "\ud800") has no UTF-8
 *   encoding; jsonb refuses it and a text column would silently store U+FFFD instead.
 */
export const NUL_MESSAGE = 'must not contain U+0000 (NUL): PostgreSQL text cannot hold it';
export const SURROGATE_MESSAGE =
  'must be well-formed Unicode: a lone UTF-16 surrogate (U+D800 to U+DFFF without its pair) cannot be stored';

/** The schema with the storable-text rules added (for string formats such as z.url()). */
export function storable<S extends z.ZodType<string>>(schema: S): S {
  return schema
    .refine((text) => !text.includes('\u0000'), NUL_MESSAGE)
    .refine((text) => text.isWellFormed(), SURROGATE_MESSAGE);
}

/** A string the server may store: z.string() with the storable-text rules; chain .min(), .max(), .regex() on it. */
export const storableText = (): z.ZodString => storable(z.string());
