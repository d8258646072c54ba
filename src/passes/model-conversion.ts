import { isRecord } from '../json.js';

/*
 * Pass models written for other tools (passkit-generator's examples among them) often use notations Wallet ignores
 * or that Apple has deprecated, or lack what Wallet requires. What can be rewritten without changing what the pass
 * means is rewritten when a template is read, and each rewrite is listed with the template, so its author sees what
 * the server changed. Objects are rebuilt with Object.fromEntries, which defines each key (a JSON "__proto__" key
 * stays a key, never a prototype):
 *
 * - Colours as hex (#1595d7, #fff) become CSS rgb() triples: Apple specifies colours "as a CSS-style RGB triple",
 *   and Wallet ignores other notations. Every key ending in "Color" is converted, at any depth (semantics'
 *   seatSectionColor too).
 * - The deprecated `barcode` dictionary (Apple: "Deprecated in iOS 9; use barcodes instead") becomes the first
 *   entry of `barcodes`, unless the model has `barcodes` already, which Wallet then uses in its place.
 */

export interface ConvertedModel {
  passJson: Record<string, unknown>;
  /** One line per rewrite: where, and from what to what. */
  conversions: string[];
}

/**
 * A template's override (MODELS_DIR/<name>.override.json): what a model lacks or should say otherwise, merged into
 * its pass.json before it is converted and checked, so a model written by someone else is used without editing
 * its folder (a boarding pass's transitType, the associatedStoreIdentifiers its appLaunchURL needs). As a JSON
 * merge patch (RFC 7386): dictionaries merge key by key, null removes the key (one the signer would drop, say), and
 * any other value, arrays included, replaces the model's.
 */
export function applyOverride(
  passJson: Readonly<Record<string, unknown>>,
  override: Readonly<Record<string, unknown>>,
): ConvertedModel {
  const conversions: string[] = [];
  return { passJson: merge(passJson, override, '', conversions), conversions };
}

function merge(
  base: Readonly<Record<string, unknown>>,
  override: Readonly<Record<string, unknown>>,
  path: string,
  conversions: string[],
): Record<string, unknown> {
  const removed = new Set<string>();
  const merged = Object.entries(override).flatMap(([key, value]): Array<[string, unknown]> => {
    const where = path === '' ? key : `${path}.${key}`;
    const current = Object.hasOwn(base, key) ? base[key] : undefined;
    if (value === null) {
      removed.add(key);
      if (current !== undefined) conversions.push(`${where}: removed by the override`);
      return [];
    }
    if (isRecord(value) && isRecord(current)) return [[key, merge(current, value, where, conversions)]];
    conversions.push(`${where}: set by the override`);
    return [[key, value]];
  });
  return Object.fromEntries([...Object.entries(base).filter(([key]) => !removed.has(key)), ...merged]);
}

const HEX_COLOR = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i;

/** The model's pass.json with what can be converted rewritten (the input is not changed). */
export function convertModel(passJson: Readonly<Record<string, unknown>>): ConvertedModel {
  const conversions: string[] = [];
  const converted = convertColors(passJson, '', conversions) as Record<string, unknown>;
  if (isRecord(converted.barcode)) {
    if (converted.barcodes === undefined) {
      converted.barcodes = [converted.barcode];
      conversions.push('barcode → barcodes[0] (barcode is deprecated since iOS 9)');
    } else {
      conversions.push(
        'barcode dropped: the model has barcodes, which Wallet uses instead (barcode is deprecated)',
      );
    }
    delete converted.barcode;
  }
  return { passJson: converted, conversions };
}

function convertColors(value: unknown, path: string, conversions: string[]): unknown {
  if (Array.isArray(value))
    return value.map((item, index) => convertColors(item, `${path}[${index}]`, conversions));
  if (!isRecord(value)) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, inner]) => {
      const where = path === '' ? key : `${path}.${key}`;
      const rgb = key.endsWith('Color') && typeof inner === 'string' ? hexToRgb(inner) : undefined;
      if (rgb !== undefined) conversions.push(`${where}: ${inner} → ${rgb}`);
      return [key, rgb ?? convertColors(inner, where, conversions)];
    }),
  );
}

function hexToRgb(color: string): string | undefined {
  const hex = HEX_COLOR.exec(color)?.[1];
  if (hex === undefined) return undefined;
  const full = hex.length === 3 ? [...hex].map((digit) => digit + digit).join('') : hex;
  const channels = [0, 2, 4].map((at) => Number.parseInt(full.slice(at, at + 2), 16));
  return `rgb(${channels.join(', ')})`;
}
