import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Database } from '../db/database.js';
import { errorResponses, noBody, pkpassResponse, walletDoc } from '../docs/route-docs.js';
import type { BundleCache } from '../passes/bundle-cache.js';
import { findPass, getSignedBundle, type PassesDeps } from '../passes/passes.js';
import { parseUpdateTag } from '../passes/versions.js';
import {
  authenticatePass,
  type FindCredentials,
  readPassCredentials,
  requireApplePassToken,
  wrongTokenError,
} from './authentication.js';
import type { KnownPasses } from './known-passes.js';
import { latestPassRoute, notModifiedSince, passCacheControl, pkpassContentType } from './latest-pass.js';
import { listUpdatablePasses, registerDevice, storeDeviceLogs, unregisterDevice } from './registrations.js';
import {
  deviceParams,
  logEntriesBody,
  passParams,
  pushTokenBody,
  registrationParams,
  serialNumbersResponse,
  updatableQuery,
} from './schemas.js';

const registrationPath =
  '/v1/devices/:deviceLibraryIdentifier/registrations/:passTypeIdentifier/:serialNumber';
const smallBody = 16 * 1024;
// Apple's endpoints answer an empty JSON object on success.
const emptyObject = z.object({});

export interface WalletRoutesDeps extends PassesDeps {
  /** The driver path, for the statements Wallet's requests run. */
  database: Pick<Database, 'query'>;
  /** Token, version and Last-Modified of passes, remembered until the database says they changed. */
  knownPasses: KnownPasses;
  /** Signed bundles of current versions, served from memory when it has the version asked for. */
  bundleCache: BundleCache;
}

/** Apple's PassKit web service: the five endpoints Wallet calls at the pass's webServiceURL. */
export const walletRoutes =
  (deps: WalletRoutesDeps): FastifyPluginAsync =>
  async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();
    const { bundleCache, knownPasses } = deps;
    const walletDeps = { ...deps, query: deps.database.query };
    const findCredentials: FindCredentials = (key) =>
      knownPasses.find(key, () => readPassCredentials(deps.database.query, key));

    // Register a pass for update notifications: 201 new, 200 already registered.
    app.post(
      registrationPath,
      {
        bodyLimit: smallBody,
        schema: {
          ...walletDoc('Register a device for update notifications of a pass', { authenticated: true }),
          params: registrationParams,
          body: pushTokenBody,
          response: { 200: emptyObject, 201: emptyObject, ...errorResponses(400, 401, 429) },
        },
      },
      async (request, reply) => {
        const { deviceLibraryIdentifier, ...key } = request.params;
        const authenticationToken = requireApplePassToken(request.headers.authorization);
        const registered = await registerDevice(walletDeps, {
          deviceLibraryIdentifier,
          pushToken: request.body.pushToken,
          key,
          authenticationToken,
        });
        if (!registered) throw wrongTokenError();
        return reply.code(registered.created ? 201 : 200).send({});
      },
    );

    // Unregister: 200 also when nothing was registered (Apple asks for 200 on success).
    app.delete(
      registrationPath,
      {
        schema: {
          ...walletDoc('Unregister a device', { authenticated: true }),
          params: registrationParams,
          response: { 200: emptyObject, ...errorResponses(400, 401, 429) },
        },
      },
      async (request, reply) => {
        const { deviceLibraryIdentifier, ...key } = request.params;
        const pass = await authenticatePass(findCredentials, key, request.headers.authorization);
        await unregisterDevice(walletDeps, deviceLibraryIdentifier, pass);
        return reply.code(200).send({});
      },
    );

    // The serial numbers of updatable passes. No Authorization header: Apple makes the device library
    // identifier the shared secret here. 204 when there is nothing (also for an unknown device).
    app.get(
      '/v1/devices/:deviceLibraryIdentifier/registrations/:passTypeIdentifier',
      {
        schema: {
          ...walletDoc('The serial numbers of passes updated since a lastUpdated tag', {
            authenticated: false,
            description: 'No Authorization: Apple makes the device library identifier the shared secret.',
          }),
          params: deviceParams,
          querystring: updatableQuery,
          response: {
            200: serialNumbersResponse,
            204: noBody('Nothing updated, or an unknown device'),
            ...errorResponses(400, 429),
          },
        },
      },
      async (request, reply) => {
        const { deviceLibraryIdentifier, passTypeIdentifier } = request.params;
        const since = request.query.passesUpdatedSince
          ? parseUpdateTag(request.query.passesUpdatedSince)
          : undefined;
        const updatable = await listUpdatablePasses(
          walletDeps,
          deviceLibraryIdentifier,
          passTypeIdentifier,
          since,
        );
        if (!updatable) return reply.code(204).send();
        return reply.code(200).send(updatable);
      },
    );

    // The latest version of a pass. 304 when If-Modified-Since is at or after the current version.
    app.get(
      latestPassRoute,
      {
        schema: {
          ...walletDoc('The latest version of a pass', { authenticated: true }),
          params: passParams,
          response: {
            200: pkpassResponse,
            304: noBody('Not modified since If-Modified-Since'),
            ...errorResponses(400, 401, 429),
          },
        },
      },
      async (request, reply) => {
        const pass = await authenticatePass(findCredentials, request.params, request.headers.authorization);
        reply.header('cache-control', passCacheControl);
        if (notModifiedSince(pass, request.headers['if-modified-since'])) {
          return reply.code(304).header('last-modified', pass.lastModifiedHttp).send();
        }
        // The version is the database's as of this request (known-passes.ts); memory answers only for exactly it.
        let bundle = bundleCache.get(pass.id, pass.version);
        let lastModified = pass.lastModifiedHttp;
        if (!bundle) {
          const stored = await findPass(deps, request.params);
          if (!stored) throw wrongTokenError();
          bundle = await getSignedBundle(deps, stored);
          lastModified = stored.lastModified.toUTCString();
        }
        return reply
          .code(200)
          .header('last-modified', lastModified)
          .header('content-type', pkpassContentType)
          .send(bundle);
      },
    );

    // Log messages from devices: logged and stored, readable through GET /admin/logs.
    app.post(
      '/v1/log',
      {
        bodyLimit: 256 * 1024,
        schema: {
          ...walletDoc('Log messages from a device', { authenticated: false }),
          body: logEntriesBody,
          response: { 200: emptyObject, ...errorResponses(400, 429) },
        },
      },
      async (request, reply) => {
        const { logs } = request.body;
        for (const message of logs) request.log.warn({ deviceLog: message }, 'Wallet device log');
        await storeDeviceLogs(walletDeps, logs);
        return reply.code(200).send({});
      },
    );
  };
