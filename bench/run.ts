/** `npm run bench`: every benchmark, one after the other (not part of the tests), then the targets' table. */
import { benchApns } from './apns.js';
import { benchBulk } from './bulk.js';
import { benchDeviceEndpoints } from './device-endpoints.js';
import { benchFanout } from './fanout.js';
import { benchScaleOut } from './scale-out.js';
import { benchServing } from './serving.js';
import { benchSigning } from './signing.js';
import { printTargets } from './targets.js';

await benchApns();
const fanout = await benchFanout();
const scaleOut = await benchScaleOut();
const bulk = await benchBulk();
const signing = await benchSigning();
const serving = await benchServing();
const deviceEndpoints = await benchDeviceEndpoints();
// In the order of the README's targets.
printTargets([...signing, ...serving, ...deviceEndpoints, ...bulk, ...fanout, ...scaleOut]);
