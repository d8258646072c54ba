import * as zlib from 'node:zlib';

/*
 * A .pkpass is a plain zip. Its entries are stored, not deflated, as passkit-generator (do-not-zip) stores them:
 * the images are PNGs already and pass.json is small, so deflating would cost time for a few hundred bytes.
 * Writing a stored zip is a few header copies once every entry's CRC-32 is known, and the template's files
 * keep theirs across passes (see bundle.ts), so only pass.json, manifest.json and signature are checksummed.
 */

export interface ZipEntry {
  name: string;
  data: Buffer;
  /** Known CRC-32 of data, to skip computing it again. */
  crc32?: number | undefined;
}

const LOCAL_HEADER = 30;
const CENTRAL_HEADER = 46;
const END_OF_CENTRAL_DIRECTORY = 22;
/** 1980-01-01 00:00, the zip epoch: a fixed time keeps equal bundles byte-identical. */
const DOS_DATE = (0 << 9) | (1 << 5) | 1;
const DOS_TIME = 0;
/** General purpose flag bit 11: the name is UTF-8 (localised folder names may not be ASCII). */
const UTF8_NAMES = 0x0800;

/** zlib.crc32 (native) arrived in Node 20.15; package.json allows 20.11, which gets the table below. */
const nativeCrc32: ((data: Buffer) => number) | undefined =
  typeof zlib.crc32 === 'function' ? zlib.crc32 : undefined;
let crcTable: Uint32Array | undefined;

export function crc32(data: Buffer): number {
  if (nativeCrc32 !== undefined) return nativeCrc32(data) >>> 0;
  crcTable ??= makeCrcTable();
  let crc = 0xffffffff;
  for (const byte of data) crc = (crcTable[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function makeCrcTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

/**
 * One buffer of its own (not a slice of Node's shared pool), so a worker thread can transfer it without a copy.
 * Sizes stay far below zip64's limits: a pass is at most a few megabytes.
 */
export function zipStored(entries: readonly ZipEntry[]): Buffer {
  const names = entries.map((entry) => Buffer.from(entry.name, 'utf8'));
  let localSize = 0;
  let centralSize = 0;
  for (const [index, entry] of entries.entries()) {
    const nameLength = (names[index] as Buffer).length;
    localSize += LOCAL_HEADER + nameLength + entry.data.length;
    centralSize += CENTRAL_HEADER + nameLength;
  }
  const out = Buffer.allocUnsafeSlow(localSize + centralSize + END_OF_CENTRAL_DIRECTORY);
  let local = 0;
  let central = localSize;
  for (const [index, entry] of entries.entries()) {
    const name = names[index] as Buffer;
    const crc = entry.crc32 ?? crc32(entry.data);
    const size = entry.data.length;
    const offset = local;
    out.writeUInt32LE(0x04034b50, local);
    out.writeUInt16LE(20, local + 4); // version needed: 2.0
    out.writeUInt16LE(UTF8_NAMES, local + 6);
    out.writeUInt16LE(0, local + 8); // stored
    out.writeUInt16LE(DOS_TIME, local + 10);
    out.writeUInt16LE(DOS_DATE, local + 12);
    out.writeUInt32LE(crc, local + 14);
    out.writeUInt32LE(size, local + 18);
    out.writeUInt32LE(size, local + 22);
    out.writeUInt16LE(name.length, local + 26);
    out.writeUInt16LE(0, local + 28);
    name.copy(out, local + LOCAL_HEADER);
    entry.data.copy(out, local + LOCAL_HEADER + name.length);
    local += LOCAL_HEADER + name.length + size;

    out.writeUInt32LE(0x02014b50, central);
    out.writeUInt16LE(20, central + 4); // made by: 2.0, MS-DOS attributes
    out.writeUInt16LE(20, central + 6);
    out.writeUInt16LE(UTF8_NAMES, central + 8);
    out.writeUInt16LE(0, central + 10);
    out.writeUInt16LE(DOS_TIME, central + 12);
    out.writeUInt16LE(DOS_DATE, central + 14);
    out.writeUInt32LE(crc, central + 16);
    out.writeUInt32LE(size, central + 20);
    out.writeUInt32LE(size, central + 24);
    out.writeUInt16LE(name.length, central + 28);
    out.fill(0, central + 30, central + 42); // extra, comment, disk, attributes
    out.writeUInt32LE(offset, central + 42);
    name.copy(out, central + CENTRAL_HEADER);
    central += CENTRAL_HEADER + name.length;
  }
  out.writeUInt32LE(0x06054b50, central);
  out.writeUInt16LE(0, central + 4);
  out.writeUInt16LE(0, central + 6);
  out.writeUInt16LE(entries.length, central + 8);
  out.writeUInt16LE(entries.length, central + 10);
  out.writeUInt32LE(centralSize, central + 12);
  out.writeUInt32LE(localSize, central + 16);
  out.writeUInt16LE(0, central + 20);
  return out;
}
