import { describe, expect, it } from 'vitest';
import { InvalidError } from '../../src/errors.js';
import {
  decodeStrings,
  mergeStrings,
  parseStrings,
  serializeStrings,
} from '../../src/signing/pass-strings.js';

const parse = (text: string) => Object.fromEntries(parseStrings(text, 'de.lproj/pass.strings'));

function utf16(text: string, order: 'le' | 'be'): Buffer {
  const le = Buffer.from(text, 'utf16le');
  if (order === 'le') return Buffer.concat([Buffer.from([0xff, 0xfe]), le]);
  return Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(le).swap16()]);
}

describe('pass.strings files', () => {
  it('reads Apple strings-file syntax: comments, escapes, single quotes, unquoted tokens, a key alone', () => {
    const text = [
      '/* a block comment',
      '   over two lines */',
      '"Gate" = "Tor"; // a line comment',
      "'Seat' = 'Platz';",
      'member_level = gold.tier;',
      '"Quote" = "Er sagte \\"Hallo\\" \\\\ Ende";',
      '"Lines" = "eins\\nzwei\\tdrei";',
      '"Unicode" = "\\U00e9t\\U00E9 \\101";',
      '"Alone";',
      '"Gate" = "Tor 2";',
    ].join('\n');
    expect(parse(text)).toEqual({
      // A later duplicate replaces the earlier one, as CoreFoundation's parser does.
      Gate: 'Tor 2',
      Seat: 'Platz',
      member_level: 'gold.tier',
      Quote: 'Er sagte "Hallo" \\ Ende',
      Lines: 'eins\nzwei\tdrei',
      Unicode: 'été A',
      Alone: 'Alone',
    });
  });

  it('names the file and line of what it cannot read', () => {
    for (const [text, problem] of [
      ['"Gate" = "Tor"\n"Seat" = "Platz";', /line 2: expected ";"/],
      ['"Gate" = "Tor;\n', /line 2: a string is not closed/],
      ['/* open\n"Gate" = "Tor";', /line 1: a comment is not closed/],
      ['"Gate" = ;', /line 1: expected a quoted string/],
      ['"Gate" = "\\U";', /\\U needs hexadecimal digits/],
    ] as const) {
      const error = (() => {
        try {
          parse(text);
        } catch (caught) {
          return caught;
        }
      })();
      expect(error, text).toBeInstanceOf(InvalidError);
      expect((error as Error).message, text).toMatch(/^de\.lproj\/pass\.strings, /);
      expect((error as Error).message, text).toMatch(problem);
    }
  });

  it('decodes UTF-8 with or without a BOM and UTF-16 in either byte order by its BOM', () => {
    const text = '"Straße" = "Grüße 👋";\n';
    expect(decodeStrings(Buffer.from(text))).toBe(text);
    expect(decodeStrings(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]))).toBe(text);
    expect(decodeStrings(utf16(text, 'le'))).toBe(text);
    expect(decodeStrings(utf16(text, 'be'))).toBe(text);
  });

  it('writes every value so that it reads back, quotes, backslashes and control characters included', () => {
    const entries: Array<[string, string]> = [
      ['Quote "q"', 'a "quoted" \\ value'],
      ['Lines', 'one\ntwo\r\tthree\u0001\u007f'],
      ['Emoji', 'Grüße 👋'],
      ['Empty', ''],
    ];
    const bytes = serializeStrings(entries);
    expect(bytes.toString()).toBe(
      [
        '"Quote \\"q\\"" = "a \\"quoted\\" \\\\ value";',
        '"Lines" = "one\\ntwo\\r\\tthree\\U0001\\U007f";',
        '"Emoji" = "Grüße 👋";',
        '"Empty" = "";',
        '',
      ].join('\n'),
    );
    expect([...parseStrings(decodeStrings(bytes), 'x')]).toEqual(entries);
  });

  it("merges a pass's strings over its template's, whatever the template file's encoding", () => {
    const template = utf16('/* from the template */\n"Gate" = "Tor";\n"Seat" = "Platz";\n', 'le');
    const merged = mergeStrings(template, { Seat: 'Sitz', Row: 'Reihe' }, 'de.lproj/pass.strings');
    expect(merged.toString()).toBe('"Gate" = "Tor";\n"Seat" = "Sitz";\n"Row" = "Reihe";\n');
    expect(mergeStrings(undefined, { Row: 'Fila' }, 'es.lproj/pass.strings').toString()).toBe(
      '"Row" = "Fila";\n',
    );
  });
});
