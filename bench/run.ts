/** `npm run bench`: every benchmark, one after the other (not part of the tests). */
import { benchApns } from './apns.js';
import { benchFanout } from './fanout.js';
import { benchSigning } from './signing.js';

await benchApns();
await benchFanout();
await benchSigning();
