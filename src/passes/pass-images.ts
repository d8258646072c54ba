import { InvalidError } from '../errors.js';
import type { PassStyle } from './templates.js';

/*
 * A pass's own images (a member photo as its thumbnail, a brand's logo), which replace its template's image of the
 * same file name in the signed bundle. The rules are Apple's ("Creating the Source for a Pass", the pass design
 * guide): images are PNG; each style shows only some images; each image is drawn in a space of a given size in
 * points, at 1x, @2x and @3x pixels per point. Wallet scales an image into its space, so a smaller one is allowed;
 * one larger than its space at its scale only makes the pass heavier, and is refused with the size it should have.
 */

export type PassImageKind = 'icon' | 'logo' | 'strip' | 'thumbnail' | 'background' | 'footer';

/** Bundle file names: the image kind, an optional @2x or @3x, .png (Apple's names; no localised images here). */
export const PASS_IMAGE_NAME = /^(icon|logo|strip|thumbnail|background|footer)(?:@([23])x)?\.png$/;

/** The images each style shows (Apple: an event ticket shows a strip, or a background and a thumbnail). */
const IMAGES_OF_STYLE: Record<PassStyle, readonly PassImageKind[]> = {
  boardingPass: ['icon', 'logo', 'footer'],
  coupon: ['icon', 'logo', 'strip'],
  eventTicket: ['icon', 'logo', 'strip', 'background', 'thumbnail'],
  generic: ['icon', 'logo', 'thumbnail'],
  storeCard: ['icon', 'logo', 'strip'],
};

/**
 * The largest space, in points, Apple gives each image in any style: the icon 38 × 38 (29 × 29 before iOS 18), the
 * logo 160 × 50, the strip 375 × 144 (less in some styles), the thumbnail 90 × 90, the background 180 × 220 and
 * the footer 286 × 15.
 */
const SPACE_IN_POINTS: Record<PassImageKind, { width: number; height: number }> = {
  icon: { width: 38, height: 38 },
  logo: { width: 160, height: 50 },
  strip: { width: 375, height: 144 },
  thumbnail: { width: 90, height: 90 },
  background: { width: 180, height: 220 },
  footer: { width: 286, height: 15 },
};

/** Per image file: enough for a detailed @3x strip; a pass is downloaded over cellular, often on every change. */
export const MAX_PASS_IMAGE_BYTES = 1024 * 1024;

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Throws InvalidError naming what Wallet would not show, or show badly, in this image of a pass of this style. */
export function checkPassImage(style: PassStyle, name: string, png: Buffer): void {
  const match = PASS_IMAGE_NAME.exec(name);
  if (!match) {
    throw new InvalidError(
      `image "${name}": not a pass image name; use icon, logo, strip, thumbnail, background or footer, with @2x or @3x, and .png (for example thumbnail@2x.png)`,
    );
  }
  const kind = match[1] as PassImageKind;
  const scale = Number(match[2] ?? 1);
  if (!IMAGES_OF_STYLE[style].includes(kind)) {
    throw new InvalidError(
      `image "${name}": a ${style} pass does not show a ${kind} image (Apple); it shows ${IMAGES_OF_STYLE[style].join(', ')}`,
    );
  }
  if (png.length > MAX_PASS_IMAGE_BYTES) {
    throw new InvalidError(
      `image "${name}": ${png.length} bytes, more than ${MAX_PASS_IMAGE_BYTES}; compress it`,
    );
  }
  const { width, height } = pngSize(name, png);
  const space = SPACE_IN_POINTS[kind];
  if (width > space.width * scale || height > space.height * scale) {
    throw new InvalidError(
      `image "${name}": ${width} × ${height} px is larger than Apple's ${kind} (${space.width} × ${space.height} points, ` +
        `${space.width * scale} × ${space.height * scale} px at ${scale}x); scale it down`,
    );
  }
}

/**
 * The width and height in a PNG's IHDR chunk, which the PNG specification puts first, after the signature; or what
 * keeps the bytes from being a PNG. Shared with the validate command (src/cli/validate.ts).
 */
export function readPngSize(png: Buffer): { width: number; height: number } | { problem: string } {
  if (!png.subarray(0, 8).equals(PNG_SIGNATURE)) return { problem: 'is not a PNG file (bad signature)' };
  if (png.length < 33 || png.readUInt32BE(8) !== 13 || png.toString('latin1', 12, 16) !== 'IHDR') {
    return { problem: 'has no IHDR chunk first' };
  }
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  if (width === 0 || height === 0) return { problem: 'has a zero width or height' };
  return { width, height };
}

function pngSize(name: string, png: Buffer): { width: number; height: number } {
  const size = readPngSize(png);
  if ('problem' in size) {
    throw new InvalidError(
      `image "${name}" ${size.problem} (Apple: pass images are PNG); export it as PNG again`,
    );
  }
  return size;
}
