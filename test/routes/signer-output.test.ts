import { afterAll, describe, expect, it } from 'vitest';
import { serverDataEnv } from '../support/database.js';
import { serverProcessTimeout, startServerProcess } from '../support/process.js';

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups) await cleanup();
});

/*
 * Issue 14, section 5: a value the signing library (passkit-generator) refuses used to print its Joi error as a
 * plain-text line from the signing thread, outside the JSON log. The server process, as `npm start` runs it: after
 * its start, every line it writes, on stdout or stderr, is one of the logger's JSON lines.
 */
describe('the server process while passes are refused by the signer', {
  timeout: serverProcessTimeout,
}, () => {
  it('writes nothing but JSON log lines', async () => {
    const adminToken = 'output-test-admin-token-0123456789';
    const server = await startServerProcess({ ADMIN_TOKEN: adminToken, ...(await serverDataEnv(cleanups)) });
    const started = server.output().length;
    try {
      for (const semantics of [{ totalPrice: '12 EUR' }, { eventName: 5 }, { seats: [{ seatRow: 3 }] }]) {
        const response = await fetch(`${server.baseUrl}/admin/passes`, {
          method: 'POST',
          headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
          body: JSON.stringify({ template: 'loyalty', pass: { semantics } }),
        });
        const body = (await response.json()) as { message: string };
        expect(response.status).toBe(400);
        expect(body.message).toMatch(/semantics.*refused by the signer/);
      }
      // The access line of the last request is written after its answer: wait for all three.
      const lines = async () => server.output().slice(started).split('\n').filter(Boolean);
      await expect
        .poll(async () => (await lines()).filter((line) => line.includes('request completed')).length)
        .toBe(3);
      for (const line of await lines()) expect(() => JSON.parse(line), line).not.toThrow();
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });
});
