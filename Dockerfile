# syntax=docker/dockerfile:1
# reaper's container image:   docker build -t reaper:0.1.0 .
#
# build    compiles the TypeScript and packs the npm tarball (what `npm pack` gives a user)
# install  runs scripts/install-image.sh: the tarball into /opt/reaper, better-sqlite3
#          built from source against this Node.js; CI runs the same script on the same
#          Debian release (scripts/check-pack.sh), so the image is what CI tested
# runtime  the slim Node.js image with /opt/reaper copied in; uid 10001, no shell needed
#
# Run it with a read-only root filesystem: reaper writes only where you point it. Mount
#   /var/lib/reaper  for an embedded SQLite state store (state: sqlite:/var/lib/reaper/state.db),
#                    plan files (--plan-out) and a metrics file (--metrics-file)
#   /tmp             for the reap plan spool (or set TMPDIR to a mounted directory)
# and the manifest read-only, e.g. at /etc/reaper/reaper.yaml. A server state store
# (postgres://, mysql://) needs no volume for state.
ARG NODE_VERSION=24.22.3

FROM node:${NODE_VERSION}-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json ./
# The native driver is not needed to compile TypeScript; it is built in the install stage.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json README.md LICENSE CHANGELOG.md ./
COPY bin ./bin
COPY config ./config
COPY src ./src
RUN npm run build && npm pack --ignore-scripts --pack-destination /pkg && mv /pkg/orphan-reaper-*.tgz /pkg/orphan-reaper.tgz

FROM node:${NODE_VERSION}-bookworm AS install
COPY scripts/install-image.sh /usr/local/src/install-image.sh
COPY --from=build /pkg/orphan-reaper.tgz /usr/local/src/orphan-reaper.tgz
RUN /usr/local/src/install-image.sh /usr/local/src/orphan-reaper.tgz /opt/reaper

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
COPY --from=install /opt/reaper /opt/reaper
# Owned by uid 10001 so that a fresh named volume mounted here is writable by reaper.
RUN mkdir -p /var/lib/reaper && chown 10001:10001 /var/lib/reaper
ENV PATH=/opt/reaper/bin:$PATH \
    NODE_ENV=production
WORKDIR /var/lib/reaper
USER 10001:10001
ENTRYPOINT ["reaper"]
CMD ["--help"]
