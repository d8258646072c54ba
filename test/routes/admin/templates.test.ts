import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../../src/paths.js';
import { startTestServer, type TestServer } from '../../support/server.js';

/* GET /admin/templates on models written by another project (passkit-generator's examples, the shared corpus). */

const corpusDir = join(projectRoot, '..', 'shared', 'corpus', 'passkit-generator-models');

interface TemplateView {
  name: string;
  usable: boolean;
  problem: string | null;
  conversions: string[];
}

describe.skipIf(!existsSync(corpusDir))('the template list', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ modelsDir: corpusDir });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('says which templates are usable, what Wallet would refuse in the others, and what was converted', async () => {
    const { status, body } = await server.admin('GET', '/admin/templates');
    expect(status).toBe(200);
    const byName = new Map((body.templates as TemplateView[]).map((template) => [template.name, template]));
    expect(byName.get('exampleBooking')).toMatchObject({
      usable: false,
      problem: expect.stringContaining('boardingPass.transitType is missing'),
      conversions: [],
    });
    expect(byName.get('posterEventTicketWithNewSeats')).toMatchObject({
      usable: true,
      problem: null,
      conversions: expect.arrayContaining(['backgroundColor: #ffffff → rgb(255, 255, 255)']),
    });
    const created = await server.admin('POST', '/admin/passes', {
      template: 'posterEventTicketWithNewSeats',
    });
    expect(created.status).toBe(201);
    const refused = await server.admin('POST', '/admin/passes', { template: 'exampleBooking' });
    expect(refused.status).toBe(400);
    expect(String(refused.body.message)).toContain('transitType');
  });
});
