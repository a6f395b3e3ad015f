# teiten image for the sensor (`teiten ingest --kafka ...`) and the storage worker
# (`teiten sink ...`); see docker-compose.yml and docs/kafka.md.
#   docker build -t teiten:local .
#   docker run --rm teiten:local --help

FROM node:24-slim AS build
WORKDIR /app
# Dependencies first (cached while package*.json do not change). Scripts wait for the sources:
# the package's `prepare` compiles TypeScript. `npm install`, not `npm ci`: the lock file names
# chdb's optional platform packages for every OS, and `npm ci` fails where the registry lacks
# one (darwin/arm64 on some mirrors); `npm install` keeps the locked versions and skips them.
# The build needs the dev dependencies (tsc), so they are pruned only after it.
COPY package.json package-lock.json ./
RUN npm install --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm rebuild --no-audit --no-fund \
 && npm run build \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=node:node /app /app
# State of a sensor (its Kafka ledger) or an embedded store; owned by `node` so that a named
# volume mounted here starts writable.
RUN mkdir -p /var/lib/teiten && chown node:node /var/lib/teiten
USER node
ENTRYPOINT ["node", "/app/bin/teiten.js"]
CMD ["--help"]
