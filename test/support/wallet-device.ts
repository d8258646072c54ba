import { randomBytes, randomUUID } from 'node:crypto';
import { unzipSync } from 'fflate';

/*
 * Does what an iPhone's Wallet does with a pass's web service, following Apple's "Adding a Web Service to Update
 * Passes": it reads webServiceURL and authenticationToken from pass.json, registers with its push token, asks for
 * updatable serial numbers with the lastUpdated tag it was given last time, fetches each with If-Modified-Since,
 * unregisters, and logs. It speaks plain HTTP through fetch and knows nothing of the server's code.
 */
export interface HeldPass {
  passTypeIdentifier: string;
  serialNumber: string;
  authenticationToken: string;
  webServiceURL: string;
  passJson: Record<string, unknown>;
  bundle: Buffer;
  lastModified: string | undefined;
}

export function readPassJson(bundle: Buffer): Record<string, unknown> {
  const entry = unzipSync(new Uint8Array(bundle))['pass.json'];
  if (!entry) throw new Error('bundle has no pass.json');
  return JSON.parse(Buffer.from(entry).toString('utf8')) as Record<string, unknown>;
}

export class WalletDevice {
  readonly deviceLibraryIdentifier: string;
  pushToken: string;
  readonly passes = new Map<string, HeldPass>();
  /** The lastUpdated tag per pass type, as Wallet keeps it. */
  readonly tags = new Map<string, string>();

  constructor(options: { deviceLibraryIdentifier?: string; pushToken?: string } = {}) {
    this.deviceLibraryIdentifier = options.deviceLibraryIdentifier ?? randomUUID().replaceAll('-', '');
    this.pushToken = options.pushToken ?? randomBytes(32).toString('hex');
  }

  /** Adds a downloaded pass and registers it for updates, as Wallet does right after adding. */
  async add(bundle: Buffer, lastModified?: string): Promise<Response> {
    const passJson = readPassJson(bundle);
    const held: HeldPass = {
      passTypeIdentifier: String(passJson.passTypeIdentifier),
      serialNumber: String(passJson.serialNumber),
      authenticationToken: String(passJson.authenticationToken),
      webServiceURL: String(passJson.webServiceURL).replace(/\/$/, ''),
      passJson,
      bundle,
      lastModified,
    };
    this.passes.set(held.serialNumber, held);
    return this.register(held.serialNumber);
  }

  held(serialNumber: string): HeldPass {
    const held = this.passes.get(serialNumber);
    if (!held) throw new Error(`device does not hold ${serialNumber}`);
    return held;
  }

  registrationUrl(held: HeldPass): string {
    return `${held.webServiceURL}/v1/devices/${this.deviceLibraryIdentifier}/registrations/${held.passTypeIdentifier}/${held.serialNumber}`;
  }

  register(serialNumber: string, token = this.held(serialNumber).authenticationToken): Promise<Response> {
    const held = this.held(serialNumber);
    return fetch(this.registrationUrl(held), {
      method: 'POST',
      headers: { authorization: `ApplePass ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ pushToken: this.pushToken }),
    });
  }

  unregister(serialNumber: string, token = this.held(serialNumber).authenticationToken): Promise<Response> {
    const held = this.held(serialNumber);
    return fetch(this.registrationUrl(held), {
      method: 'DELETE',
      headers: { authorization: `ApplePass ${token}` },
    });
  }

  /** GET the serial numbers of updated passes of a type, sending the tag from last time; keeps the new tag. */
  async listUpdated(webServiceURL: string, passTypeIdentifier: string): Promise<string[]> {
    const tag = this.tags.get(passTypeIdentifier);
    const query = tag === undefined ? '' : `?passesUpdatedSince=${encodeURIComponent(tag)}`;
    const response = await fetch(
      `${webServiceURL}/v1/devices/${this.deviceLibraryIdentifier}/registrations/${passTypeIdentifier}${query}`,
    );
    if (response.status === 204) return [];
    if (response.status !== 200) throw new Error(`list answered ${response.status}`);
    const body = (await response.json()) as { serialNumbers: string[]; lastUpdated: string };
    if (typeof body.lastUpdated !== 'string') throw new Error('lastUpdated is not a string');
    this.tags.set(passTypeIdentifier, body.lastUpdated);
    return body.serialNumbers;
  }

  /** Fetches the latest version with If-Modified-Since; returns the status (200 replaces the held pass). */
  async fetchLatest(serialNumber: string): Promise<number> {
    const held = this.held(serialNumber);
    const headers: Record<string, string> = { authorization: `ApplePass ${held.authenticationToken}` };
    if (held.lastModified) headers['if-modified-since'] = held.lastModified;
    const response = await fetch(
      `${held.webServiceURL}/v1/passes/${held.passTypeIdentifier}/${serialNumber}`,
      { headers },
    );
    if (response.status === 200) {
      held.bundle = Buffer.from(await response.arrayBuffer());
      held.passJson = readPassJson(held.bundle);
      held.lastModified = response.headers.get('last-modified') ?? undefined;
    }
    return response.status;
  }

  /** What Wallet does after a push: list what changed since its tag, then fetch each; returns the refreshed serials. */
  async sync(webServiceURL: string, passTypeIdentifier: string): Promise<string[]> {
    const refreshed: string[] = [];
    for (const serialNumber of await this.listUpdated(webServiceURL, passTypeIdentifier)) {
      if (this.passes.has(serialNumber) && (await this.fetchLatest(serialNumber)) === 200)
        refreshed.push(serialNumber);
    }
    return refreshed;
  }

  log(webServiceURL: string, messages: string[]): Promise<Response> {
    return fetch(`${webServiceURL}/v1/log`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ logs: messages }),
    });
  }
}
