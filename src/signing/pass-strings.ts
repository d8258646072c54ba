import { InvalidError } from '../errors.js';

/*
 * `<lang>.lproj/pass.strings`: Apple's strings-file format ("Localizing String Resources"): `"key" = "value";`
 * pairs with C comments, in the old-style property-list syntax that CoreFoundation parses. A pass's own strings
 * are merged with its template's here: the template's file is parsed, the pass's keys replace or join its keys,
 * and one file without duplicate keys is written.
 *
 * Written by hand, not with passkit-generator's Strings helpers: its parser reads only one-line `"k" = "v";`
 * pairs and its writer does not escape `"` or `\`, so a translation with a quote would break the whole file.
 */

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/**
 * The text of a strings file. Apple's tools wrote UTF-16 with a byte order mark for years and UTF-8 today; both
 * occur in templates, so the BOM decides and no BOM means UTF-8.
 */
export function decodeStrings(bytes: Buffer): string {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return bytes.subarray(2).toString('utf16le');
  if (bytes[0] === 0xfe && bytes[1] === 0xff) {
    const swapped = Buffer.from(bytes.subarray(2));
    return swapped
      .subarray(0, swapped.length & ~1)
      .swap16()
      .toString('utf16le');
  }
  return (bytes.subarray(0, 3).equals(UTF8_BOM) ? bytes.subarray(3) : bytes).toString('utf8');
}

/** CoreFoundation's unquoted-string characters: a key or value may be written without quotes when it has only these. */
const UNQUOTED = /[A-Za-z0-9_$+/:.-]/;
const SIMPLE_ESCAPES: Record<string, string> = {
  a: '\u0007',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
};

/** Reads a strings file's pairs in order; a later duplicate key replaces the earlier one, as CoreFoundation does. */
export function parseStrings(text: string, file: string): Map<string, string> {
  const reader = new StringsReader(text, file);
  const entries = new Map<string, string>();
  for (reader.skipSpace(); !reader.atEnd(); reader.skipSpace()) {
    const key = reader.readString();
    reader.skipSpace();
    // `"key";` alone is allowed and means the key is its own value.
    let value = key;
    if (reader.take('=')) {
      reader.skipSpace();
      value = reader.readString();
      reader.skipSpace();
    }
    if (!reader.take(';')) reader.fail('expected ";" after the pair');
    entries.set(key, value);
  }
  return entries;
}

class StringsReader {
  private at = 0;

  constructor(
    private readonly text: string,
    private readonly file: string,
  ) {}

  atEnd(): boolean {
    return this.at >= this.text.length;
  }

  take(char: string): boolean {
    if (this.text[this.at] !== char) return false;
    this.at++;
    return true;
  }

  skipSpace(): void {
    while (!this.atEnd()) {
      if (/\s/.test(this.text[this.at] as string)) this.at++;
      else if (this.text.startsWith('//', this.at)) this.skipPast('\n', true);
      else if (this.text.startsWith('/*', this.at)) this.skipPast('*/', false);
      else return;
    }
  }

  private skipPast(end: string, endOfFileEnds: boolean): void {
    const found = this.text.indexOf(end, this.at + 2);
    if (found === -1 && !endOfFileEnds) this.fail('a comment is not closed with */');
    this.at = found === -1 ? this.text.length : found + end.length;
  }

  readString(): string {
    const quote = this.text[this.at];
    if (quote === '"' || quote === "'") return this.readQuoted(quote);
    const start = this.at;
    while (!this.atEnd() && UNQUOTED.test(this.text[this.at] as string)) this.at++;
    if (this.at === start) this.fail('expected a quoted string');
    return this.text.slice(start, this.at);
  }

  private readQuoted(quote: string): string {
    this.at++;
    let out = '';
    for (;;) {
      const char = this.text[this.at++];
      if (char === undefined) this.fail(`a string is not closed with ${quote}`);
      if (char === quote) return out;
      out += char === '\\' ? this.readEscape() : char;
    }
  }

  private readEscape(): string {
    const char = this.text[this.at++];
    if (char === undefined) this.fail('a string ends in a backslash');
    if (char === 'U') return String.fromCharCode(this.readDigits(/[0-9A-Fa-f]/, 4, 16));
    if (/[0-7]/.test(char)) {
      this.at--;
      return String.fromCharCode(this.readDigits(/[0-7]/, 3, 8));
    }
    return SIMPLE_ESCAPES[char] ?? char;
  }

  private readDigits(digit: RegExp, most: number, radix: number): number {
    const start = this.at;
    while (this.at - start < most && digit.test(this.text[this.at] ?? '')) this.at++;
    if (this.at === start) this.fail('\\U needs hexadecimal digits');
    return Number.parseInt(this.text.slice(start, this.at), radix);
  }

  fail(problem: string): never {
    const line = this.text.slice(0, this.at).split('\n').length;
    throw new InvalidError(
      `${this.file}, line ${line}: ${problem} (a strings file holds "key" = "value"; pairs)`,
    );
  }
}

/** `"key" = "value";` per line, UTF-8, with `"`, `\` and control characters escaped so that every value reads back. */
export function serializeStrings(entries: Iterable<[string, string]>): Buffer {
  const lines: string[] = [];
  for (const [key, value] of entries) lines.push(`${quoted(key)} = ${quoted(value)};\n`);
  return Buffer.from(lines.join(''));
}

function quoted(text: string): string {
  const escaped = text.replace(/[\\"\p{Cc}]/gu, (char) => {
    if (char === '\\' || char === '"') return `\\${char}`;
    if (char === '\n') return '\\n';
    if (char === '\t') return '\\t';
    if (char === '\r') return '\\r';
    return `\\U${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
  return `"${escaped}"`;
}

/** The template's pass.strings (when it has one) with the pass's own strings merged in, key by key. */
export function mergeStrings(
  templateFile: Buffer | undefined,
  own: Readonly<Record<string, string>>,
  file: string,
): Buffer {
  const entries = templateFile ? parseStrings(decodeStrings(templateFile), file) : new Map<string, string>();
  for (const [key, value] of Object.entries(own)) entries.set(key, value);
  return serializeStrings(entries);
}
