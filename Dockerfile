# mirror-kit container image: the built CLI (dist/) and its production dependencies on a Node LTS
# base, running `mirror-kit serve` as a non-root user with the cache in a volume.
#
# Build after `npm ci && npm run build` (the image copies the host's build and node_modules; it runs no
# npm, so it builds offline and needs no registry credentials), or from an installed package with
# `mirror-kit image` (it ships this file and sends the package plus its production dependencies as the
# context). The release builds without node_modules in the context: each platform installs its own.
#   docker build -t mirror-kit .
#   docker build --build-arg NODE_IMAGE=my-node-runtime:20 -t mirror-kit .   # any image with node >= 20.19 in PATH
# Run:
#   docker run -d -p 5000:5000 -v mirror-kit-data:/var/lib/mirror-kit --stop-timeout 15 mirror-kit
#   docker run -d -p 5000:5000 -v "$PWD/cache:/var/lib/mirror-kit" mirror-kit   # a host folder works too
# Configure it as `mirror-kit serve`: flags after the image name, MIRROR_KIT_* variables, a --config
# file, or a registry:2 mirror's REGISTRY_HTTP_ADDR / REGISTRY_PROXY_* / config.yml.
ARG NODE_IMAGE=node:22-alpine

# Production dependencies only, for the platform being built. This stage is thrown away; only its
# node_modules reaches the image.
# - A context with node_modules (a checkout after `npm ci`; `mirror-kit up` / `image`, which send the
#   installed package's production dependencies and no lock file): it is pruned of every package
#   package-lock.json marks "dev" (what `npm prune --omit=dev` removes), with node alone, so any Node
#   image can do it, offline.
# - A context without node_modules (the release: buildx builds linux/amd64 and linux/arm64 from one
#   checkout): `npm ci --omit=dev` runs here, on the target platform, so a dependency with native code
#   or per-platform binaries gets the ones that platform needs. Needs npm in the base (official images).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
# What the .dockerignore allow-list sends: package.json, package-lock.json in a checkout, node_modules
# when the context has one (a COPY of node_modules itself would fail without it), and the build.
COPY . ./
RUN if [ -d node_modules ]; then \
      node -e "const fs = require('fs'); const lock = fs.existsSync('package-lock.json') ? require('./package-lock.json') : { packages: {} }; for (const [path, pkg] of Object.entries(lock.packages)) if (path && pkg.dev) fs.rmSync(path, { recursive: true, force: true });"; \
    else \
      npm ci --omit=dev --no-audit --no-fund; \
    fi \
 && rm -rf node_modules/.bin node_modules/.package-lock.json

FROM ${NODE_IMAGE}
LABEL org.opencontainers.image.title="mirror-kit" \
      org.opencontainers.image.description="Pull-through registry cache (OCI Distribution mirror)" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
# Tells `serve` it runs in this image: a config.yml mounted at /etc/docker/registry/config.yml is read
# when no other config is given, and a volume mounted at /var/lib/registry holds the cache, as with registry:2.
ENV MIRROR_KIT_IMAGE=1
WORKDIR /app
# Owned by root and read-only to the service user: the process cannot rewrite its own code.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY dist ./dist
COPY templates ./templates
COPY plugins ./plugins
# The default storage, ./mirror-kit-data, resolves into the volume. Not ENV MIRROR_KIT_STORAGE or
# MIRROR_KIT_LISTEN: environment outranks the config file and is read after REGISTRY_*, so either
# would silently override REGISTRY_HTTP_ADDR, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY and a
# config.yml's http.addr / storage, which must keep working as they do for `mirror-kit serve`.
# /var/lib/registry is owned by the service user too, so a new named volume mounted there is writable.
RUN mkdir -p /var/lib/mirror-kit /var/lib/registry /tmp/mirror-kit \
 && chown 10001:10001 /var/lib/mirror-kit /var/lib/registry /tmp/mirror-kit \
 && ln -s /var/lib/mirror-kit /app/mirror-kit-data
# No USER: serve starts as root only to give the storage folder (however it is configured) to uid
# 10001 — a host folder Docker created belongs to root — and then drops to 10001:10001 for good
# before it opens a port or reads a request, as official images do. Numeric ids, so it works on bases
# without useradd or /etc/passwd (alpine, distroless, local). MIRROR_KIT_RUN_DIR is where serve
# records its URL for `mirror-kit healthcheck`, which Docker runs as root.
ENV MIRROR_KIT_RUN_AS=10001:10001 \
    MIRROR_KIT_RUN_DIR=/tmp/mirror-kit
VOLUME /var/lib/mirror-kit
EXPOSE 5000
# The server finishes in-flight requests for up to 10 s, then cancels downloads and removes their
# temporary files. `docker stop` waits 10 s by default: give it more (--stop-timeout 15, Compose
# stop_grace_period: 15s) or the process is killed mid-cleanup (still safe: nothing half-written is
# ever published, and leftover temporary files are removed at the next start).
STOPSIGNAL SIGTERM
# `mirror-kit healthcheck` asks /healthz where serve really listens (serve records its URL; without a
# record it resolves flags, MIRROR_KIT_* / REGISTRY_* variables and the config file exactly as serve does).
HEALTHCHECK --interval=15s --timeout=10s --start-period=20s --retries=3 \
  CMD ["node", "/app/dist/cli/healthcheck-main.js"]
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["serve"]
