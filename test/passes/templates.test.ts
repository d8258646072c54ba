import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTemplates } from '../../src/passes/templates.js';
import { projectRoot } from '../../src/paths.js';

const modelsDir = join(projectRoot, 'models');

describe('the example templates in models/', () => {
  it('load with their style and field keys, and no problems', async () => {
    const { templates, problems } = await loadTemplates(modelsDir);
    expect(problems).toEqual([]);
    const styles = Object.fromEntries(
      [...templates.values()].map((template) => [template.name, template.style]),
    );
    expect(styles).toEqual({
      boarding: 'boardingPass',
      coupon: 'coupon',
      event: 'eventTicket',
      loyalty: 'storeCard',
      membership: 'generic',
    });
    expect(templates.get('loyalty')?.fieldKeys).toEqual(
      expect.arrayContaining(['points', 'member', 'tier', 'terms']),
    );
    expect(templates.get('event')?.fieldKeys).toEqual(
      expect.arrayContaining(['event', 'venue', 'date', 'seat', 'gate']),
    );
    expect(templates.get('coupon')?.fieldKeys).toEqual(expect.arrayContaining(['offer', 'expires']));
    expect(templates.get('boarding')?.fieldKeys).toEqual(
      expect.arrayContaining(['origin', 'destination', 'gate', 'seat', 'boardingTime']),
    );
  });

  it('keep every image in memory, but not pass.json (it is rebuilt for each pass)', async () => {
    const { templates } = await loadTemplates(modelsDir);
    for (const template of templates.values()) {
      expect(Object.keys(template.files)).toEqual(
        expect.arrayContaining(['icon.png', 'icon@2x.png', 'icon@3x.png']),
      );
      expect(template.files['pass.json']).toBeUndefined();
    }
  });

  it('have icons and logos at 1x, 2x and 3x in the sizes Apple recommends', async () => {
    const { templates } = await loadTemplates(modelsDir);
    const expected: Record<string, [number, number]> = {
      icon: [29, 29],
      logo: [160, 50],
      strip: [375, 123],
      thumbnail: [90, 90],
      footer: [286, 15],
    };
    for (const template of templates.values()) {
      for (const [name, content] of Object.entries(template.files)) {
        const match = /^(\w+?)(?:@([23])x)?\.png$/.exec(name);
        const base = match?.[1];
        if (base === undefined || !(base in expected))
          throw new Error(`unexpected file ${template.name}/${name}`);
        const scale = Number(match?.[2] ?? 1);
        const [width, height] = expected[base] ?? [0, 0];
        const png = PNG.sync.read(content);
        expect([png.width, png.height], `${template.name}/${name}`).toEqual([width * scale, height * scale]);
      }
    }
  });
});

describe('loadTemplates with broken templates', () => {
  let dir: string;
  let icon: Buffer;
  const passJson = (extra: Record<string, unknown>) =>
    JSON.stringify({ description: 'd', organizationName: 'o', ...extra });

  async function model(name: string, files: Record<string, string | Buffer>): Promise<void> {
    for (const [path, content] of Object.entries(files)) {
      await mkdir(join(dir, name, path, '..'), { recursive: true });
      await writeFile(join(dir, name, path), content);
    }
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'templates-test-'));
    icon = await readFile(join(modelsDir, 'loyalty.pass', 'icon.png'));
    const generic = { generic: { primaryFields: [{ key: 'name', label: 'NAME', value: 'x' }] } };
    await model('good.pass', {
      'pass.json': passJson(generic),
      'icon.png': icon,
      'de.lproj/pass.strings': '"NAME" = "Name";\n',
      'de.lproj/logo.png': icon,
      '.DS_Store': 'junk',
    });
    await model('invalid-json.pass', { 'pass.json': '{ "generic": ', 'icon.png': icon });
    await model('no-icon.pass', { 'pass.json': passJson(generic), 'logo.png': icon });
    await model('two-styles.pass', { 'pass.json': passJson({ ...generic, coupon: {} }), 'icon.png': icon });
    await model('no-style.pass', { 'pass.json': passJson({}), 'icon.png': icon });
    await model('duplicate-keys.pass', {
      'pass.json': passJson({
        coupon: { primaryFields: [{ key: 'offer', value: 'a' }], backFields: [{ key: 'offer', value: 'b' }] },
      }),
      'icon.png': icon,
    });
    await model('strip-and-thumbnail.pass', {
      'pass.json': passJson({ eventTicket: {} }),
      'icon.png': icon,
      'strip@2x.png': icon,
      'de.lproj/thumbnail.png': icon,
    });
    await model('not-a-template', { 'pass.json': '{', 'icon.png': icon });
    await model('bad-override.pass', { 'pass.json': passJson(generic), 'icon.png': icon });
    await writeFile(join(dir, 'bad-override.override.json'), '{ "logoText": ');
    await model('list-override.pass', { 'pass.json': passJson(generic), 'icon.png': icon });
    await writeFile(join(dir, 'list-override.override.json'), '["logoText"]');
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reports each unusable template with its path and loads the rest', async () => {
    const { templates, problems } = await loadTemplates(dir);
    expect([...templates.keys()]).toEqual(['good']);
    const byPath = Object.fromEntries(problems.map((problem) => [problem.path, problem.message]));
    expect(byPath).toEqual({
      [join(dir, 'bad-override.pass')]: expect.stringMatching(
        /bad-override\.override\.json is not valid JSON/,
      ),
      [join(dir, 'list-override.pass')]: 'list-override.override.json is not a JSON object',
      [join(dir, 'duplicate-keys.pass')]: expect.stringMatching(/field key "offer" is used twice/),
      [join(dir, 'invalid-json.pass')]: expect.stringMatching(/pass\.json is not valid JSON/),
      [join(dir, 'no-icon.pass')]: expect.stringMatching(/icon\.png is missing/),
      [join(dir, 'no-style.pass')]: expect.stringMatching(/exactly one style key .* found none/),
      [join(dir, 'strip-and-thumbnail.pass')]: expect.stringMatching(
        /an event ticket with a strip image must not have a thumbnail image/,
      ),
      [join(dir, 'two-styles.pass')]: expect.stringMatching(
        /exactly one style key .* found coupon and generic/,
      ),
    });
  });

  it('loads localized files from <lang>.lproj folders and skips hidden files', async () => {
    const { templates } = await loadTemplates(dir);
    const good = templates.get('good');
    expect(Object.keys(good?.files ?? {}).sort()).toEqual([
      'de.lproj/logo.png',
      'de.lproj/pass.strings',
      'icon.png',
    ]);
    expect(good?.fieldKeys).toEqual(['name']);
  });

  it('reports a models folder that does not exist', async () => {
    const missing = join(dir, 'nope');
    const { templates, problems } = await loadTemplates(missing);
    expect(templates.size).toBe(0);
    expect(problems).toEqual([
      { path: missing, message: expect.stringMatching(/cannot read the models folder/) },
    ]);
  });
});
