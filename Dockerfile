# syntax=docker/dockerfile:1

# Node 24 LTS for every stage (package.json's engines: >=22).
ARG NODE_IMAGE=node:24-slim

# Build stage: install exactly from the lockfile (npm's postinstall runs `prisma generate` into
# src/db/generated; src/ is copied later so that source changes keep the install layer), then compile src/
# and the generated Prisma client to dist/.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json prisma.config.ts tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY prisma ./prisma
RUN npm ci --no-audit --no-fund
COPY src ./src
RUN npm run build

# Production dependencies only, from a fresh install rather than a prune, so the image gets exactly what
# scripts/production-start-check.sh installs and starts in CI. --omit=optional because npm keeps dev
# dependencies that are also optional peers (prisma and typescript, via @prisma/client: ~170 MB) under
# --omit=dev alone; no optional package is used at run time. The postinstall skips `prisma generate` here:
# the client is already compiled into dist/.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/postinstall.mjs ./scripts/postinstall.mjs
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund

# Runtime stage: compiled JavaScript only; no compiler, no sources, no dev dependencies.
FROM ${NODE_IMAGE}
WORKDIR /app
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# Read at run time: the migrations applied at start, and the bundled templates (MODELS_DIR).
COPY prisma ./prisma
COPY models ./models
COPY certificates.example ./certificates.example
# The command-line tools (doctor, validate, simulate): docker exec <container> node bin/passkit-server.mjs doctor
COPY bin ./bin
# /data holds the embedded database (used when DATABASE_URL is unset);
# mount Apple's certificates at /certificates, or pass them as SIGNER_CERT_PEM, SIGNER_KEY_PEM, WWDR_CERT_PEM.
RUN mkdir -p /data /certificates && chown node:node /data

ENV NODE_ENV=production \
    DATA_DIR=/data \
    CERTIFICATES_DIR=/certificates \
    PORT=3000 \
    HOST=0.0.0.0
USER node
VOLUME /data
EXPOSE 3000
# Node's own fetch: the slim image has no curl. /readyz is 503 while the database does not answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Pending migrations are applied at start, before the server listens.
CMD ["node", "dist/src/server.js"]
