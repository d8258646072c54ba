import { inflateRawSync } from 'node:zlib';

/*
 * Reads a zip from its central directory, so that what a plain unzip hides is seen: directory entries,
 * symbolic links (Unix mode in the external attributes), duplicate names. Stored and deflated entries only,
 * the two methods Wallet reads.
 */

export interface ZipEntry {
  name: string;
  isDirectory: boolean;
  isSymlink: boolean;
  /** Undefined for directories, links and entries that cannot be read (see `error`). */
  data: Buffer | undefined;
  error?: string;
}

export class ZipError extends Error {
  override name = 'ZipError';
}

const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const CENTRAL_HEADER = 0x02014b50;
const LOCAL_HEADER = 0x04034b50;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
/** Far above any real pass (Wallet wants them small); stops a zip bomb. */
const MAX_ENTRY_BYTES = 64 * 1024 * 1024;

export function readZip(buffer: Buffer): ZipEntry[] {
  const end = findEndOfCentralDirectory(buffer);
  const count = buffer.readUInt16LE(end + 10);
  let at = buffer.readUInt32LE(end + 16);
  const entries: ZipEntry[] = [];
  for (let i = 0; i < count; i++) {
    if (at + 46 > buffer.length || buffer.readUInt32LE(at) !== CENTRAL_HEADER) {
      throw new ZipError('the central directory is damaged');
    }
    const nameLength = buffer.readUInt16LE(at + 28);
    const next = at + 46 + nameLength + buffer.readUInt16LE(at + 30) + buffer.readUInt16LE(at + 32);
    entries.push(readEntry(buffer, at, nameLength));
    at = next;
  }
  return entries;
}

function findEndOfCentralDirectory(buffer: Buffer): number {
  // The record is 22 bytes plus a comment of at most 65535 bytes, at the very end.
  const lowest = Math.max(0, buffer.length - 22 - 0xffff);
  for (let at = buffer.length - 22; at >= lowest; at--) {
    if (buffer.readUInt32LE(at) === END_OF_CENTRAL_DIRECTORY) return at;
  }
  throw new ZipError('not a zip archive (no end of central directory record)');
}

function readEntry(buffer: Buffer, at: number, nameLength: number): ZipEntry {
  const name = buffer.toString('utf8', at + 46, at + 46 + nameLength);
  const madeBy = buffer.readUInt16LE(at + 4) >> 8;
  const mode = madeBy === 3 ? buffer.readUInt32LE(at + 38) >>> 16 : 0;
  const isSymlink = (mode & S_IFMT) === S_IFLNK;
  const isDirectory = name.endsWith('/');
  if (isDirectory || isSymlink) return { name, isDirectory, isSymlink, data: undefined };
  try {
    return { name, isDirectory, isSymlink, data: entryData(buffer, at) };
  } catch (error) {
    return { name, isDirectory, isSymlink, data: undefined, error: (error as Error).message };
  }
}

function entryData(buffer: Buffer, central: number): Buffer {
  const method = buffer.readUInt16LE(central + 10);
  const compressedSize = buffer.readUInt32LE(central + 20);
  const local = buffer.readUInt32LE(central + 42);
  if (local + 30 > buffer.length || buffer.readUInt32LE(local) !== LOCAL_HEADER) {
    throw new ZipError('local header missing');
  }
  const start = local + 30 + buffer.readUInt16LE(local + 26) + buffer.readUInt16LE(local + 28);
  const raw = buffer.subarray(start, start + compressedSize);
  if (method === 0) return Buffer.from(raw);
  if (method === 8) return inflateRawSync(raw, { maxOutputLength: MAX_ENTRY_BYTES });
  throw new ZipError(`compression method ${method} (Wallet reads stored and deflated entries only)`);
}
