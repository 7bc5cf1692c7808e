# syntax=docker/dockerfile:1
# mesh-pep container image: gRPC (ext_authz + ext_proc) on 9001, admin HTTP on 9090.
#   docker build -t mesh-pep:local .
#   docker run --rm -p 9001:9001 -p 9090:9090 mesh-pep:local          # bundled policy, dev keys
#   docker run --rm mesh-pep:local validate --config /app/config/security_mesh.yaml

# Node 22 (LTS, maintained to 2027-04-30; Node 20 reached its end of life in 2026-04), pinned by digest so a
# rebuild gets the same bytes. The digest is the multi-arch index of node:22-bookworm-slim at Node v22.23.1,
# as pinned (and checked with `node --version`) by a public Dockerfile found with a code search: no image
# could be pulled where this was written. The version check below fails the build if the digest and the
# version ever disagree. Refresh both together (e.g. `docker buildx imagetools inspect node:22-bookworm-slim`).
ARG NODE_VERSION=v22.23.1
ARG NODE_IMAGE=node:22-bookworm-slim@sha256:53ada149d435c38b14476cb57e4a7da73c15595aba79bd6971b547ceb6d018bf

# ---- build: full install (TypeScript) and compile ---------------------------------------------------
FROM ${NODE_IMAGE} AS build
ARG NODE_VERSION
RUN test "$(node --version)" = "${NODE_VERSION}"
WORKDIR /src
COPY package.json package-lock.json ./
# Scripts are skipped here because `prepare` runs tsc before the sources are copied.
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY proto ./proto
COPY src ./src
RUN npx tsc -p tsconfig.json

# ---- runtime: production dependencies, compiled code, protos and the bundled policy -----------------
FROM ${NODE_IMAGE} AS runtime
ARG NODE_VERSION
ARG VERSION=0.1.0
ARG REVISION=unknown
# OCI image annotations (https://github.com/opencontainers/image-spec/blob/main/annotations.md).
LABEL org.opencontainers.image.title="mesh-pep" \
      org.opencontainers.image.description="Policy Enforcement Point for AI-agent traffic in an Envoy/Istio mesh (ext_authz + ext_proc)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/mesh-pep/mesh-pep" \
      org.opencontainers.image.base.name="docker.io/library/node:22-bookworm-slim"
RUN test "$(node --version)" = "${NODE_VERSION}"
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would run tsc, which is a dev dependency and not needed at run time.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /src/dist/src ./dist/src
COPY proto ./proto
COPY config ./config
# The bundled policy keeps development keys and the audit log in /app/.mesh-pep (created on first start);
# the only path the unprivileged user may write. Mount a volume there to keep them across restarts.
RUN mkdir -p /app/.mesh-pep && chown 1000:1000 /app/.mesh-pep
# Numeric uid/gid (the image's `node` user) so Kubernetes can verify runAsNonRoot.
USER 1000:1000
EXPOSE 9001 9090
# Slim images have no curl: ask Node's fetch. Follows MESH_PEP_ADMIN_ADDRESS if the admin port moves.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "const a=process.env.MESH_PEP_ADMIN_ADDRESS||'0.0.0.0:9090';fetch('http://127.0.0.1:'+a.slice(a.lastIndexOf(':')+1)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# V8 flags (src/server/workers.ts, WORKER_V8_FLAGS): a fixed 8 MB young generation, no allocation-site
# pretenuring and an old generation that grows to 2.5x its live size, for a lower peak RSS under load and
# a steadier p99. On the command line, because Node refuses some of them in NODE_OPTIONS; cluster
# workers get the same flags from the primary.
ENTRYPOINT ["node", "--max-semi-space-size=8", "--min-semi-space-size=8", "--no-allocation-site-pretenuring", "--heap-growing-percent=150", "dist/src/cli/main.js"]
CMD ["serve"]
