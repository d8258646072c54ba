import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Finding } from './findings.js';
import {
  type Answer,
  describeAnswer,
  type PassUnderTest,
  readPassJson,
  readSerialNumbers,
  SimulatedDevice,
} from './simulate-device.js';
import { failed, judged, passed, skipped } from './simulate-rules.js';

/*
 * The conformance run of `simulate`: the calls Wallet makes on an iPhone, in the order it makes them, each answer
 * judged against Apple's rule. A step that depends on an earlier answer (a tag, a Last-Modified) is reported as
 * not checked when that answer was missing, so one broken rule is reported once.
 */

export interface ConformanceOptions {
  /** Changes the pass on the server (our admin API); enables the rules about what a change must do. */
  change?: () => Promise<void>;
}

/** What the simulated device holds after the run; `watch` carries on from it. */
export interface Conformance {
  findings: Finding[];
  device: SimulatedDevice;
  /** The newest lastUpdated tag the list answered. */
  tag?: string;
  /** The Last-Modified of the newest version fetched. */
  lastModified?: string;
  passJson: Record<string, unknown>;
  /** Set when the server answered the list only with an Authorization header (a failed rule). */
  listNeedsToken: boolean;
}

type Step = (run: Conformance, options: ConformanceOptions) => Promise<void>;

const steps: Step[] = [
  checkRegisterAgain,
  checkList,
  checkListUnchanged,
  checkFetch,
  checkNotModified,
  checkChange,
  checkWrongTokens,
  checkUnregister,
  checkLog,
];

export async function runConformance(
  pass: PassUnderTest,
  options: ConformanceOptions = {},
): Promise<Conformance> {
  const run: Conformance = {
    findings: [],
    device: new SimulatedDevice(pass),
    passJson: pass.passJson,
    listNeedsToken: false,
  };
  if (!(await checkRegister(run))) return run;
  for (const step of steps) await step(run, options);
  return run;
}

/** False when nothing answers at all: every other rule would fail for the same reason. */
async function checkRegister(run: Conformance): Promise<boolean> {
  const answer = await run.device.register();
  if (answer.status === 0) {
    run.findings.push(failed('reachable', `${run.device.pass.webServiceURL}: ${describeAnswer(answer)}`));
    return false;
  }
  run.findings.push(judged('registerNew', answer.status === 201, describeAnswer(answer)));
  return true;
}

async function checkRegisterAgain(run: Conformance): Promise<void> {
  const answer = await run.device.register();
  run.findings.push(judged('registerAgain', answer.status === 200, describeAnswer(answer)));
}

/** The list as Wallet sends it, or with the token when the server was found to demand one (to carry on). */
function list(run: Conformance, tag: string | undefined): Promise<Answer> {
  return run.device.list(tag, run.listNeedsToken);
}

async function checkList(run: Conformance): Promise<void> {
  let answer = await run.device.list(undefined);
  if (answer.status === 200) {
    run.findings.push(passed('listWithoutAuthorization', describeAnswer(answer)));
  } else {
    answer = await retryWithToken(run, answer);
  }
  if (answer.status !== 200) {
    const reason = `the list ${describeAnswer(answer)}`;
    run.findings.push(skipped('listSerial', reason), skipped('lastUpdatedString', reason));
    return;
  }
  judgeSerialNumbers(run, answer);
}

async function retryWithToken(run: Conformance, answer: Answer): Promise<Answer> {
  const withToken = await run.device.list(undefined, true);
  run.listNeedsToken = withToken.status === 200;
  const after = run.listNeedsToken
    ? '; with the ApplePass token it answered 200 (carrying on with the token)'
    : '';
  run.findings.push(failed('listWithoutAuthorization', `${describeAnswer(answer)}${after}`));
  return withToken;
}

function judgeSerialNumbers(run: Conformance, answer: Answer): void {
  const body = readSerialNumbers(answer);
  if (typeof body === 'string') {
    run.findings.push(failed('listSerial', body), skipped('lastUpdatedString', body));
    return;
  }
  const { serialNumber } = run.device.pass;
  const listed = `serialNumbers ${JSON.stringify(body.serialNumbers)}`;
  run.findings.push(judged('listSerial', body.serialNumbers.includes(serialNumber), listed));
  const { lastUpdated } = body;
  const shown =
    lastUpdated === undefined ? 'no lastUpdated' : `${typeof lastUpdated} ${JSON.stringify(lastUpdated)}`;
  run.findings.push(judged('lastUpdatedString', typeof lastUpdated === 'string', shown));
  if (lastUpdated !== undefined && lastUpdated !== null) run.tag = String(lastUpdated);
}

/*
 * A server's tag may be conservative (e.g. a snapshot's xmin, which stays behind while any transaction runs), so
 * a pass can be listed once more (Wallet then gets 304). A device simply lists again later with the newest tag;
 * so does simulate, a few times with backoff, before it calls the rule broken.
 */
const relistDelaysMs = [100, 200, 400, 800];

/** Lists until `done` accepts an answer or the delays run out; `tagFor` picks the tag of each attempt. */
async function listUntil(
  run: Conformance,
  tagFor: (previous: Answer | undefined) => string | undefined,
  done: (answer: Answer) => boolean,
): Promise<{ answer: Answer; relisted: number }> {
  let answer = await list(run, tagFor(undefined));
  for (const [relisted, delay] of relistDelaysMs.entries()) {
    if (done(answer)) return { answer, relisted };
    await sleep(delay);
    answer = await list(run, tagFor(answer));
  }
  return { answer, relisted: relistDelaysMs.length };
}

async function checkListUnchanged(run: Conformance): Promise<void> {
  if (run.tag === undefined) {
    run.findings.push(skipped('listUnchanged', 'the list without a tag gave no lastUpdated tag'));
    return;
  }
  const firstTag = run.tag;
  const { answer, relisted } = await listUntil(
    run,
    (previous) => {
      run.tag = (previous && lastUpdatedOf(previous)) ?? run.tag;
      return run.tag;
    },
    (candidate) => candidate.status === 204,
  );
  if (answer.status !== 204) {
    const detail = `with passesUpdatedSince=${firstTag} it ${describeList(answer)}, ${relisted + 1} times in a row`;
    run.findings.push(failed('listUnchanged', detail));
    return;
  }
  const again =
    relisted === 0 ? '' : ` (after listing the pass ${relisted} more time(s), each with the newest tag)`;
  run.findings.push(passed('listUnchanged', `answered 204${again}`));
}

/** "answered 200: serialNumbers [...], lastUpdated "7"", or the plain answer when it is not a 200. */
function describeList(answer: Answer): string {
  const body = answer.status === 200 ? readSerialNumbers(answer) : undefined;
  if (body === undefined || typeof body === 'string') return describeAnswer(answer);
  return `answered 200: serialNumbers ${JSON.stringify(body.serialNumbers)}, lastUpdated ${JSON.stringify(body.lastUpdated)}`;
}

/** lastUpdated of a 200 answer, as the string a device would send back. */
function lastUpdatedOf(answer: Answer): string | undefined {
  if (answer.status !== 200) return undefined;
  const body = readSerialNumbers(answer);
  if (typeof body === 'string' || body.lastUpdated === undefined || body.lastUpdated === null)
    return undefined;
  return String(body.lastUpdated);
}

async function checkFetch(run: Conformance): Promise<void> {
  const answer = await run.device.fetchPass();
  if (answer.status !== 200) {
    const reason = `the pass ${describeAnswer(answer)}`;
    run.findings.push(
      failed('fetchOk', describeAnswer(answer)),
      skipped('contentType', reason),
      skipped('lastModified', reason),
      skipped('sameSerial', reason),
    );
    return;
  }
  run.findings.push(passed('fetchOk', `answered 200, ${answer.body.length} bytes`));
  judgeContentType(run, answer);
  judgeLastModified(run, answer);
  judgeBundle(run, answer);
}

function judgeContentType(run: Conformance, answer: Answer): void {
  const contentType = answer.headers.get('content-type');
  const mediaType = contentType?.split(';')[0]?.trim().toLowerCase();
  const detail = contentType === null ? 'no Content-Type' : `Content-Type: ${contentType}`;
  run.findings.push(judged('contentType', mediaType === 'application/vnd.apple.pkpass', detail));
}

function judgeLastModified(run: Conformance, answer: Answer): void {
  const value = answer.headers.get('last-modified');
  if (value === null) {
    run.findings.push(failed('lastModified', 'no Last-Modified header'));
    return;
  }
  const valid = !Number.isNaN(Date.parse(value));
  run.findings.push(
    judged('lastModified', valid, `Last-Modified: ${value}${valid ? '' : ' (not an HTTP date)'}`),
  );
  if (valid) run.lastModified = value;
}

function judgeBundle(run: Conformance, answer: Answer): void {
  try {
    const passJson = readPassJson(answer.body);
    const { serialNumber } = run.device.pass;
    const same = passJson.serialNumber === serialNumber;
    run.findings.push(
      judged('sameSerial', same, `pass.json serialNumber ${JSON.stringify(passJson.serialNumber)}`),
    );
    if (same) run.passJson = passJson;
  } catch (error) {
    run.findings.push(failed('sameSerial', error instanceof Error ? error.message : String(error)));
  }
}

async function checkNotModified(run: Conformance): Promise<void> {
  if (run.lastModified === undefined) {
    run.findings.push(skipped('notModified', 'the pass came without a Last-Modified to send back'));
    return;
  }
  const answer = await run.device.fetchPass(run.lastModified);
  const detail = `with If-Modified-Since: ${run.lastModified} it ${describeAnswer(answer)}`;
  run.findings.push(judged('notModified', answer.status === 304, detail));
}

async function checkChange(run: Conformance, options: ConformanceOptions): Promise<void> {
  if (!options.change) return;
  const earlierTag = run.tag;
  const earlierLastModified = run.lastModified;
  await options.change();
  await checkChangeListed(run, earlierTag);
  await checkChangeFetched(run, earlierLastModified);
}

async function checkChangeListed(run: Conformance, earlierTag: string | undefined): Promise<void> {
  if (earlierTag === undefined) {
    const reason = 'there was no lastUpdated tag from before the change';
    run.findings.push(skipped('listChanged', reason), skipped('tagMoves', reason));
    return;
  }
  const { answer } = await listUntil(
    run,
    () => earlierTag,
    (candidate) => listsPass(run, candidate) && (lastUpdatedOf(candidate) ?? earlierTag) !== earlierTag,
  );
  const body = answer.status === 200 ? readSerialNumbers(answer) : describeAnswer(answer);
  if (typeof body === 'string') {
    run.findings.push(failed('listChanged', body), skipped('tagMoves', body));
    return;
  }
  const detail = `with passesUpdatedSince=${earlierTag}: serialNumbers ${JSON.stringify(body.serialNumbers)}`;
  run.findings.push(judged('listChanged', listsPass(run, answer), detail));
  const tag = lastUpdatedOf(answer);
  run.findings.push(
    judged('tagMoves', tag !== undefined && tag !== earlierTag, `lastUpdated ${earlierTag} → ${tag}`),
  );
  if (tag !== undefined) run.tag = tag;
}

function listsPass(run: Conformance, answer: Answer): boolean {
  if (answer.status !== 200) return false;
  const body = readSerialNumbers(answer);
  return typeof body !== 'string' && body.serialNumbers.includes(run.device.pass.serialNumber);
}

async function checkChangeFetched(run: Conformance, earlierLastModified: string | undefined): Promise<void> {
  if (earlierLastModified === undefined) {
    run.findings.push(skipped('changeFetched', 'there was no Last-Modified from before the change'));
    return;
  }
  const answer = await run.device.fetchPass(earlierLastModified);
  const lastModified = answer.headers.get('last-modified');
  const later = lastModified !== null && Date.parse(lastModified) > Date.parse(earlierLastModified);
  const detail = `with If-Modified-Since: ${earlierLastModified} it ${describeAnswer(answer)}, Last-Modified: ${lastModified ?? 'none'}`;
  run.findings.push(judged('changeFetched', answer.status === 200 && later, detail));
  if (answer.status !== 200 || lastModified === null) return;
  run.lastModified = lastModified;
  try {
    run.passJson = readPassJson(answer.body);
  } catch {
    // Reported by the sameSerial rule on the first fetch; watch compares against the version held before.
  }
}

async function checkWrongTokens(run: Conformance): Promise<void> {
  const wrongToken = randomBytes(20).toString('hex');
  const fetched = await run.device.fetchPass(undefined, wrongToken);
  run.findings.push(judged('fetchWrongToken', fetched.status === 401, describeAnswer(fetched)));
  const registered = await run.device.register(wrongToken);
  run.findings.push(judged('registerWrongToken', registered.status === 401, describeAnswer(registered)));
}

async function checkUnregister(run: Conformance): Promise<void> {
  const first = await run.device.unregister();
  run.findings.push(judged('unregister', first.status === 200, describeAnswer(first)));
  const second = await run.device.unregister();
  run.findings.push(judged('unregisterAgain', second.status === 200, describeAnswer(second)));
}

async function checkLog(run: Conformance): Promise<void> {
  const message = `passkit-server simulate: test message from simulated device ${run.device.deviceLibraryIdentifier}`;
  const answer = await run.device.log([message]);
  run.findings.push(judged('log', answer.status === 200, describeAnswer(answer)));
}
