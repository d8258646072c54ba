/** `npm run bench`: every benchmark, one after the other (not part of the tests). */
import { benchApns } from './apns.js';
import { benchBulk } from './bulk.js';
import { benchDeviceEndpoints } from './device-endpoints.js';
import { benchFanout } from './fanout.js';
import { benchScaleOut } from './scale-out.js';
import { benchServing } from './serving.js';
import { benchSigning } from './signing.js';

await benchApns();
await benchFanout();
await benchScaleOut();
await benchBulk();
await benchSigning();
await benchServing();
await benchDeviceEndpoints();
