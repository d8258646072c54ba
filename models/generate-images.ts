/**
 * Draws the example templates' images (icon, logo, strip, thumbnail, footer at 1x/2x/3x) with pngjs.
 * Run with `npx tsx models/generate-images.ts`; the PNGs are committed, so this only runs when a design changes.
 *
 * Sizes follow Apple's image guidelines for passes (points at 1x): icon 29x29, logo up to 160x50,
 * strip 375x123 (storeCard/coupon/eventTicket), thumbnail 90x90, footer 286x15 (boardingPass).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';

type Rgb = readonly [number, number, number];
type Glyph = 'star' | 'ticket' | 'percent' | 'plane' | 'person';

interface Design {
  folder: string;
  /** Brand color of the icon and of the logo mark; the pass background uses the same hue. */
  brand: Rgb;
  /** Color of the glyph drawn on the brand color. */
  ink: Rgb;
  glyph: Glyph;
  /** Color of the abstract "wordmark" bars next to the logo mark (sits on the pass background). */
  wordmark: Rgb;
  strip?: readonly [Rgb, Rgb];
  thumbnail?: boolean;
  footer?: Rgb;
}

const designs: Design[] = [
  {
    folder: 'loyalty.pass',
    brand: [236, 174, 72],
    ink: [18, 78, 92],
    glyph: 'star',
    wordmark: [255, 255, 255],
    strip: [
      [28, 110, 124],
      [236, 174, 72],
    ],
  },
  {
    folder: 'event.pass',
    brand: [232, 72, 104],
    ink: [255, 255, 255],
    glyph: 'ticket',
    wordmark: [255, 255, 255],
    strip: [
      [58, 28, 92],
      [232, 72, 104],
    ],
  },
  {
    folder: 'coupon.pass',
    brand: [255, 255, 255],
    ink: [214, 64, 52],
    glyph: 'percent',
    wordmark: [255, 255, 255],
    strip: [
      [214, 64, 52],
      [250, 150, 60],
    ],
  },
  {
    folder: 'boarding.pass',
    brand: [36, 99, 235],
    ink: [255, 255, 255],
    glyph: 'plane',
    wordmark: [30, 41, 59],
    footer: [36, 99, 235],
  },
  {
    folder: 'membership.pass',
    brand: [99, 102, 241],
    ink: [255, 255, 255],
    glyph: 'person',
    wordmark: [255, 255, 255],
    thumbnail: true,
  },
];

/** A tiny RGBA canvas drawn in 1x points and rasterized at `scale`, so every resolution has the same shapes. */
class Canvas {
  readonly png: PNG;

  constructor(
    readonly width: number,
    readonly height: number,
    readonly scale: number,
  ) {
    this.png = new PNG({ width: width * scale, height: height * scale });
  }

  /** Sets every pixel whose center (in points) satisfies `inside` to the color returned by `color`. */
  paint(inside: (x: number, y: number) => boolean, color: (x: number, y: number) => Rgb, alpha = 255): void {
    const { width, height, data } = this.png;
    for (let py = 0; py < height; py++) {
      for (let px = 0; px < width; px++) {
        const x = (px + 0.5) / this.scale;
        const y = (py + 0.5) / this.scale;
        if (!inside(x, y)) continue;
        const [r, g, b] = color(x, y);
        const i = (py * width + px) * 4;
        // Over a transparent pixel keep the pure color (with its alpha) instead of blending towards black.
        const a = (data[i + 3] ?? 0) === 0 ? 1 : alpha / 255;
        data[i] = Math.round(r * a + (data[i] ?? 0) * (1 - a));
        data[i + 1] = Math.round(g * a + (data[i + 1] ?? 0) * (1 - a));
        data[i + 2] = Math.round(b * a + (data[i + 2] ?? 0) * (1 - a));
        data[i + 3] = Math.max(data[i + 3] ?? 0, alpha);
      }
    }
  }

  fill(inside: (x: number, y: number) => boolean, color: Rgb, alpha = 255): void {
    this.paint(inside, () => color, alpha);
  }

  write(path: string): void {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, PNG.sync.write(this.png));
  }
}

const roundedRect =
  (left: number, top: number, w: number, h: number, r: number) =>
  (x: number, y: number): boolean => {
    if (x < left || y < top || x > left + w || y > top + h) return false;
    const cx = Math.min(Math.max(x, left + r), left + w - r);
    const cy = Math.min(Math.max(y, top + r), top + h - r);
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
  };

const circle =
  (cx: number, cy: number, r: number) =>
  (x: number, y: number): boolean =>
    (x - cx) ** 2 + (y - cy) ** 2 <= r * r;

/** Even-odd point-in-polygon test. */
const polygon =
  (points: ReadonlyArray<readonly [number, number]>) =>
  (x: number, y: number): boolean => {
    let inside = false;
    for (let i = 0, j = points.length - 1; i < points.length; j = i++) {
      const [xi, yi] = points[i] ?? [0, 0];
      const [xj, yj] = points[j] ?? [0, 0];
      if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
  };

const mix = (a: Rgb, b: Rgb, t: number): Rgb => [
  a[0] + (b[0] - a[0]) * t,
  a[1] + (b[1] - a[1]) * t,
  a[2] + (b[2] - a[2]) * t,
];

/** Draws the glyph inside the square (left, top, size). */
function drawGlyph(canvas: Canvas, glyph: Glyph, left: number, top: number, size: number, ink: Rgb): void {
  const c = (fx: number, fy: number): [number, number] => [left + fx * size, top + fy * size];
  switch (glyph) {
    case 'star': {
      const points: [number, number][] = [];
      for (let k = 0; k < 10; k++) {
        const radius = k % 2 === 0 ? 0.36 : 0.15;
        const angle = -Math.PI / 2 + (k * Math.PI) / 5;
        points.push(c(0.5 + radius * Math.cos(angle), 0.53 + radius * Math.sin(angle)));
      }
      canvas.fill(polygon(points), ink);
      return;
    }
    case 'ticket': {
      const body = roundedRect(left + 0.16 * size, top + 0.3 * size, 0.68 * size, 0.4 * size, 0.06 * size);
      const notchL = circle(...c(0.16, 0.5), 0.08 * size);
      const notchR = circle(...c(0.84, 0.5), 0.08 * size);
      canvas.fill((x, y) => body(x, y) && !notchL(x, y) && !notchR(x, y), ink);
      return;
    }
    case 'percent': {
      const ring = (cx: number, cy: number) => {
        const outer = circle(...c(cx, cy), 0.11 * size);
        const inner = circle(...c(cx, cy), 0.05 * size);
        return (x: number, y: number) => outer(x, y) && !inner(x, y);
      };
      const slash = polygon([c(0.66, 0.2), c(0.74, 0.24), c(0.34, 0.8), c(0.26, 0.76)]);
      const a = ring(0.32, 0.32);
      const b = ring(0.68, 0.68);
      canvas.fill((x, y) => a(x, y) || b(x, y) || slash(x, y), ink);
      return;
    }
    case 'plane': {
      const fuselage = roundedRect(
        left + 0.46 * size,
        top + 0.14 * size,
        0.08 * size,
        0.72 * size,
        0.04 * size,
      );
      const wings = polygon([
        c(0.5, 0.38),
        c(0.88, 0.58),
        c(0.88, 0.64),
        c(0.5, 0.54),
        c(0.12, 0.64),
        c(0.12, 0.58),
      ]);
      const tail = polygon([
        c(0.5, 0.76),
        c(0.66, 0.86),
        c(0.66, 0.9),
        c(0.5, 0.85),
        c(0.34, 0.9),
        c(0.34, 0.86),
      ]);
      canvas.fill((x, y) => fuselage(x, y) || wings(x, y) || tail(x, y), ink);
      return;
    }
    case 'person': {
      const head = circle(...c(0.5, 0.36), 0.14 * size);
      const shoulders = circle(...c(0.5, 0.86), 0.3 * size);
      canvas.fill((x, y) => head(x, y) || (shoulders(x, y) && y < top + 0.8 * size), ink);
      return;
    }
  }
}

function drawIcon(design: Design, scale: number): Canvas {
  const canvas = new Canvas(29, 29, scale);
  canvas.fill(roundedRect(0, 0, 29, 29, 6.5), design.brand);
  drawGlyph(canvas, design.glyph, 3, 3, 23, design.ink);
  return canvas;
}

/** A mark plus two rounded bars standing in for a wordmark (Wallet shows logoText next to it if set). */
function drawLogo(design: Design, scale: number): Canvas {
  const canvas = new Canvas(160, 50, scale);
  canvas.fill(roundedRect(2, 7, 36, 36, 8), design.brand);
  drawGlyph(canvas, design.glyph, 6, 11, 28, design.ink);
  canvas.fill(roundedRect(48, 15, 86, 9, 4.5), design.wordmark);
  canvas.fill(roundedRect(48, 29, 56, 6, 3), design.wordmark, 150);
  return canvas;
}

/** A diagonal gradient with two soft circles: reads as a banner behind the primary field. */
function drawStrip(colors: readonly [Rgb, Rgb], scale: number): Canvas {
  const canvas = new Canvas(375, 123, scale);
  canvas.paint(
    () => true,
    (x, y) => mix(colors[0], colors[1], Math.min(1, (x / 375) * 0.8 + (y / 123) * 0.2)),
  );
  canvas.fill(circle(320, 20, 70), [255, 255, 255], 28);
  canvas.fill(circle(260, 120, 45), [255, 255, 255], 20);
  return canvas;
}

function drawThumbnail(design: Design, scale: number): Canvas {
  const canvas = new Canvas(90, 90, scale);
  canvas.paint(circle(45, 45, 44), (x, y) => mix(design.brand, [255, 255, 255], ((x + y) / 180) * 0.35));
  drawGlyph(canvas, design.glyph, 15, 12, 60, design.ink);
  return canvas;
}

/** A dotted perforation line, like the tear-off stub of a paper boarding pass. */
function drawFooter(color: Rgb, scale: number): Canvas {
  const canvas = new Canvas(286, 15, scale);
  for (let x = 5; x < 286; x += 10) canvas.fill(circle(x, 7.5, 2), color, 200);
  return canvas;
}

const suffix = (scale: number): string => (scale === 1 ? '' : `@${scale}x`);

function generate(modelsDir: string): void {
  for (const design of designs) {
    for (const scale of [1, 2, 3]) {
      const file = (name: string) => join(modelsDir, design.folder, `${name}${suffix(scale)}.png`);
      drawIcon(design, scale).write(file('icon'));
      drawLogo(design, scale).write(file('logo'));
      if (design.strip) drawStrip(design.strip, scale).write(file('strip'));
      if (design.thumbnail) drawThumbnail(design, scale).write(file('thumbnail'));
      if (design.footer) drawFooter(design.footer, scale).write(file('footer'));
    }
  }
}

generate(dirname(fileURLToPath(import.meta.url)));
