# teiten image for the sensor (`teiten ingest --kafka ...`) and the storage worker
# (`teiten sink ...`); see docker-compose.yml and docs/kafka.md.
#   docker build -t teiten:local .
#   docker run --rm teiten:local --help

FROM node:24-slim AS build
WORKDIR /app
# Dependencies first (cached while package*.json do not change). Scripts wait for the sources:
# the package's `prepare` compiles TypeScript.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm rebuild --no-audit --no-fund \
 && npm run build \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=node:node /app /app
USER node
ENTRYPOINT ["node", "/app/bin/teiten.js"]
CMD ["--help"]
