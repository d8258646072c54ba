/*
 * A vitest setup file (vitest.config.ts): every child process a test starts through test/support/process.ts
 * is killed when that test ends, or, started outside a test (beforeAll), when its file ends, whether the test
 * passed, failed or timed out. Its hooks run after the file's own (vitest runs after-hooks in reverse), so a
 * test's own graceful stop comes first.
 */
import { afterAll, afterEach, beforeEach } from 'vitest';
import { childOwners } from './process.js';

beforeEach(() => childOwners.beginTest());
afterEach(() => childOwners.endTest());
afterAll(() => childOwners.endFile());
