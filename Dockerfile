# Berth as a container image: the same shape as registry:2 (port 5000, data in the volume
# /var/lib/registry, config at /etc/docker/registry/config.yml, REGISTRY_* overrides).
#   docker build -t berth .
#   docker run -d -p 5000:5000 -v registry-data:/var/lib/registry --name registry berth
# BASE_IMAGE must provide node (20+) and npm; any Debian or Alpine based Node image does.
ARG BASE_IMAGE=node:20-bookworm-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json && npm prune --omit=dev --no-audit --no-fund

FROM ${BASE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY docker/config.yml /etc/docker/registry/config.yml
RUN mkdir -p /var/lib/registry && chown 1000:1000 /var/lib/registry
USER 1000:1000
VOLUME ["/var/lib/registry"]
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=10s --start-period=5s --retries=3 \
  CMD ["node", "/app/dist/src/cli.js", "health", "/etc/docker/registry/config.yml"]
ENTRYPOINT ["node", "/app/dist/src/cli.js"]
CMD ["serve", "/etc/docker/registry/config.yml"]
