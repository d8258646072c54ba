/*
 * A minimal DER/BER reader: enough to walk a CMS SignedData and X.509 certificates while keeping the exact
 * bytes of each element (a CMS signature covers the DER bytes of the signed attributes as sent, so they must
 * not be re-encoded). Single-byte tags only, which is all CMS and X.509 use.
 */

export interface DerNode {
  tag: number;
  /** The whole element: tag, length and content. */
  raw: Buffer;
  content: Buffer;
  constructed: boolean;
}

export class DerError extends Error {
  override name = 'DerError';
}

export const TAG = {
  boolean: 0x01,
  integer: 0x02,
  octetString: 0x04,
  oid: 0x06,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

/** Reads the element at `offset`; BER indefinite lengths are accepted for constructed elements. */
export function readElement(buffer: Buffer, offset = 0): DerNode {
  if (offset + 2 > buffer.length) throw new DerError('truncated element');
  const tag = buffer[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags are not supported');
  const constructed = (tag & 0x20) !== 0;
  const first = buffer[offset + 1] as number;
  const headerEnd = offset + 2;
  if (first === 0x80) return readIndefinite(buffer, offset, headerEnd, tag, constructed);
  let length = first;
  let contentStart = headerEnd;
  if (first > 0x80) {
    const count = first & 0x7f;
    if (count > 4 || headerEnd + count > buffer.length) throw new DerError('bad length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (buffer[headerEnd + i] as number);
    contentStart = headerEnd + count;
  }
  const end = contentStart + length;
  if (end > buffer.length) throw new DerError('element longer than its container');
  return { tag, raw: buffer.subarray(offset, end), content: buffer.subarray(contentStart, end), constructed };
}

function readIndefinite(
  buffer: Buffer,
  offset: number,
  contentStart: number,
  tag: number,
  constructed: boolean,
): DerNode {
  if (!constructed) throw new DerError('indefinite length on a primitive element');
  let at = contentStart;
  while (!(buffer[at] === 0 && buffer[at + 1] === 0)) {
    if (at >= buffer.length) throw new DerError('unterminated indefinite length');
    at += readElement(buffer, at).raw.length;
  }
  return {
    tag,
    raw: buffer.subarray(offset, at + 2),
    content: buffer.subarray(contentStart, at),
    constructed,
  };
}

/** The elements inside a constructed element (end-of-contents markers skipped). */
export function children(node: DerNode): DerNode[] {
  if (!node.constructed) throw new DerError(`element 0x${node.tag.toString(16)} is not constructed`);
  const result: DerNode[] = [];
  let at = 0;
  while (at < node.content.length) {
    const child = readElement(node.content, at);
    result.push(child);
    at += child.raw.length;
  }
  return result;
}

export function expectTag(node: DerNode | undefined, tag: number, what: string): DerNode {
  if (node === undefined || node.tag !== tag) throw new DerError(`${what}: unexpected structure`);
  return node;
}

export function decodeOid(node: DerNode): string {
  const bytes = expectTag(node, TAG.oid, 'object identifier').content;
  const parts: number[] = [];
  let value = 0;
  for (const byte of bytes) {
    value = value * 128 + (byte & 0x7f);
    if ((byte & 0x80) === 0) {
      parts.push(value);
      value = 0;
    }
  }
  const first = parts.shift() ?? 0;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...parts].join('.');
}

/** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) as a Date. */
export function decodeTime(node: DerNode): Date {
  const text = node.content.toString('latin1');
  const match = /^(\d{2}|\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:\.\d+)?Z$/.exec(text);
  if (match === null || (node.tag !== TAG.utcTime && node.tag !== TAG.generalizedTime)) {
    throw new DerError(`not a UTC time: ${text}`);
  }
  const [, y, mo, d, h, mi, s] = match;
  let year = Number(y);
  if (node.tag === TAG.utcTime) year += year < 50 ? 2000 : 1900;
  return new Date(Date.UTC(year, Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s ?? '0')));
}
