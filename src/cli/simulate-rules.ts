import { type Finding, fail, pass, warn } from './findings.js';

/*
 * The rules `simulate` checks, in the words of Apple's "Adding a Web Service to Update Passes" and its endpoint
 * pages, each with why Wallet cares and how to fix a server that breaks it.
 */
interface Rule {
  rule: string;
  why: string;
  fix: string;
}

const registration =
  'POST /v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}/{serialNumber}';
const list = 'GET /v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}';

export const simulateRules = {
  reachable: {
    rule: 'The web service answers at the pass’s webServiceURL',
    why: 'Wallet calls webServiceURL + /v1/…; when nothing answers, the pass never registers and never updates.',
    fix: 'Check that webServiceURL in pass.json is the public base URL of the web service (no /v1 suffix).',
  },
  registerNew: {
    rule: 'Register a new pass → 201',
    why: 'Wallet registers right after the pass is added. Apple: 201 when the registration is new, 200 when the serial number is already registered for the device.',
    fix: `Answer ${registration} with 201 when it creates the registration.`,
  },
  registerAgain: {
    rule: 'Register it again (already registered) → 200',
    why: 'Wallet registers again when updates are turned back on or after a restore; an error here stops updates for that device.',
    fix: 'Treat a repeated registration as success: answer 200 (and keep the newest push token).',
  },
  listWithoutAuthorization: {
    rule: 'List updatable passes with no Authorization header → 200',
    why: 'Wallet sends no Authorization on this request (the device library identifier is the shared secret). A server that demands one never tells Wallet about a change: "the pass doesn\'t update".',
    fix: `Do not require Authorization on ${list}; find the registrations by deviceLibraryIdentifier.`,
  },
  listSerial: {
    rule: 'List without passesUpdatedSince → serialNumbers has the pass',
    why: 'Without a tag Wallet asks for all its registered passes of the type; a serial number left out is never fetched.',
    fix: 'With no passesUpdatedSince, answer every serial number registered for the device and pass type.',
  },
  lastUpdatedString: {
    rule: 'lastUpdated is a string',
    why: 'Apple’s SerialNumbers object defines lastUpdated as a string; Wallet keeps it and sends it back as passesUpdatedSince.',
    fix: 'Serialize lastUpdated as a JSON string, e.g. "lastUpdated": "1351981923".',
  },
  listUnchanged: {
    rule: 'List with that lastUpdated tag, nothing changed → 204',
    why: 'Wallet sends the tag from its last answer; listing passes that did not change makes every device download them again after each push.',
    fix: 'Answer only the passes updated since passesUpdatedSince, and 204 No Content when there are none.',
  },
  listChanged: {
    rule: 'After a change, list with the earlier tag → 200 with the pass',
    why: 'After the push, Wallet asks for the passes updated since its tag; a change missing here never reaches the device.',
    fix: 'Record an update tag with every change and list the passes changed since passesUpdatedSince.',
  },
  tagMoves: {
    rule: 'After a change, lastUpdated is a new tag',
    why: 'Wallet keeps the newest tag; a tag that does not move makes it list the same passes after every push.',
    fix: 'Return a lastUpdated that moves forward with every change.',
  },
  fetchOk: {
    rule: 'Get the pass (ApplePass token, no If-Modified-Since) → 200',
    why: 'This is how Wallet gets every new version of the pass.',
    fix: 'Authenticate GET /v1/passes/{passTypeIdentifier}/{serialNumber} with the pass’s authenticationToken and answer 200 with the signed .pkpass.',
  },
  contentType: {
    rule: 'The pass comes as Content-Type application/vnd.apple.pkpass',
    why: 'application/vnd.apple.pkpass is the media type of a pass bundle; Wallet and Safari treat other types as something else.',
    fix: 'Set Content-Type: application/vnd.apple.pkpass on the pass answer.',
  },
  lastModified: {
    rule: 'The pass comes with a Last-Modified header',
    why: 'Wallet sends it back as If-Modified-Since; without it the server cannot answer 304, and a stale date keeps new versions away.',
    fix: 'Send Last-Modified (an HTTP date) of the pass’s current version, moving forward with every change.',
  },
  sameSerial: {
    rule: 'The pass is a .pkpass with the same serialNumber',
    why: 'An updated pass is a new pass with the same pass type identifier and serial number; Wallet drops anything else.',
    fix: 'Serve the signed .pkpass (a zip with pass.json at its root) of the pass that was asked for.',
  },
  notModified: {
    rule: 'Get the pass with If-Modified-Since = its Last-Modified → 304',
    why: 'Wallet sends If-Modified-Since on every fetch; 304 tells it the pass it holds is current, without signing and downloading it again.',
    fix: 'Answer 304 Not Modified when the pass has not changed since If-Modified-Since (compare whole seconds).',
  },
  changeFetched: {
    rule: 'After a change, get the pass with the earlier If-Modified-Since → 200, later Last-Modified',
    why: 'A 304 here leaves the old version on the device for good; HTTP dates have whole seconds, so two changes in one second must still move Last-Modified.',
    fix: 'Move Last-Modified forward with every change, by at least one second.',
  },
  fetchWrongToken: {
    rule: 'Get the pass with a wrong authenticationToken → 401',
    why: 'The authentication token is what keeps others from downloading the pass.',
    fix: 'Compare the ApplePass token with the pass’s authenticationToken and answer 401 Unauthorized when they differ.',
  },
  registerWrongToken: {
    rule: 'Register with a wrong authenticationToken → 401',
    why: 'Otherwise anyone can register devices for the pass and receive its pushes.',
    fix: 'Compare the ApplePass token with the pass’s authenticationToken and answer 401 Unauthorized when they differ.',
  },
  unregister: {
    rule: 'Unregister the pass → 200',
    why: 'Wallet unregisters when the pass is removed or updates are turned off; otherwise the server keeps pushing to that device.',
    fix: `Answer DELETE on ${registration.slice(5)} with 200 after deleting the registration.`,
  },
  unregisterAgain: {
    rule: 'Unregister it again (not registered) → 200',
    why: 'Wallet may unregister more than once; an error makes it try again and again.',
    fix: 'Answer 200 also when there was no registration to delete.',
  },
  log: {
    rule: 'Log messages (POST /v1/log) → 200',
    why: 'Wallet reports problems with the web service there; often the only clue why a pass does not update.',
    fix: 'Accept POST /v1/log with {"logs": ["…"]} and answer 200.',
  },
} satisfies Record<string, Rule>;

export type RuleId = keyof typeof simulateRules;

export function passed(id: RuleId, detail: string): Finding {
  return pass(simulateRules[id].rule, detail);
}

export function failed(id: RuleId, detail: string): Finding {
  const { rule, fix, why } = simulateRules[id];
  return fail(rule, detail, fix, why);
}

/** A rule that could not be checked because an earlier answer was missing what it needs. */
export function skipped(id: RuleId, reason: string): Finding {
  const { rule, fix, why } = simulateRules[id];
  return warn(rule, `not checked: ${reason}`, fix, why);
}

export function judged(id: RuleId, ok: boolean, detail: string): Finding {
  return ok ? passed(id, detail) : failed(id, detail);
}
