# Berth as a container image: the same shape as registry:2 (port 5000, data in the volume
# /var/lib/registry, config at /etc/docker/registry/config.yml, REGISTRY_* overrides, root).
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
COPY scripts ./scripts
RUN npx tsc -p tsconfig.json && npx tsc -p src/ui/web/tsconfig.json && node scripts/build-ui.mjs \
  && npm prune --omit=dev --no-audit --no-fund

FROM ${BASE_IMAGE}
ENV NODE_ENV=production
# what `berth gc`, `berth health` (and `registry garbage-collect`) read when given no config file
ENV REGISTRY_CONFIGURATION_PATH=/etc/docker/registry/config.yml
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/dist/ui ./dist/ui
COPY bin ./bin
COPY docker/config.yml /etc/docker/registry/config.yml
COPY docker/entrypoint.sh /entrypoint.sh
# `berth` on PATH, and `registry` for registry:2's commands (registry garbage-collect CONFIG).
# Runs as root, as registry:2 does, so that its existing (root-owned) data directories work as
# they are. The volume belongs to uid 1000 so that `--user 1000:1000` works on a fresh volume.
RUN chmod 755 /entrypoint.sh /app/bin/berth /app/dist/src/cli.js \
  && mkdir -p /usr/local/bin /var/lib/registry \
  && ln -sf /app/bin/berth /usr/local/bin/berth \
  && ln -sf /app/bin/berth /usr/local/bin/registry \
  && chown 1000:1000 /var/lib/registry
VOLUME ["/var/lib/registry"]
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=10s --start-period=5s --retries=3 \
  CMD ["node", "/app/dist/src/cli.js", "health"]
ENTRYPOINT ["/entrypoint.sh"]
CMD ["/etc/docker/registry/config.yml"]
