# syntax=docker/dockerfile:1

# Build stage: install exactly from the lockfile. npm's postinstall runs `prisma generate`, which writes the
# Prisma client into src/db/generated. Dev dependencies are then pruned; the generated client stays in src/.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json prisma.config.ts ./
COPY prisma ./prisma
RUN npm ci --no-audit --no-fund
COPY src ./src
COPY models ./models
COPY certificates.example ./certificates.example
RUN npm prune --omit=dev --no-audit --no-fund

# Runtime stage: the sources run through tsx, which is a runtime dependency (`npm start` is `tsx src/server.ts`).
FROM node:20-slim
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/src ./src
COPY --from=build /app/prisma ./prisma
COPY --from=build /app/models ./models
COPY --from=build /app/certificates.example ./certificates.example
# /data holds the embedded database (when DATABASE_URL is unset); mount the certificates at /certificates.
RUN mkdir -p /data /certificates && chown node:node /data

ENV NODE_ENV=production \
    DATA_DIR=/data \
    CERTIFICATES_DIR=/certificates \
    PORT=3000 \
    HOST=0.0.0.0
USER node
VOLUME /data
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "--import", "tsx", "src/server.ts"]
