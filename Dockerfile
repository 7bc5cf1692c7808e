# syntax=docker/dockerfile:1
# mesh-pep container image: gRPC (ext_authz + ext_proc) on 9001, admin HTTP on 9090.
#   docker build -t mesh-pep:local .
#   docker run --rm -p 9001:9001 -p 9090:9090 mesh-pep:local          # bundled policy, dev keys
#   docker run --rm mesh-pep:local validate --config /app/config/security_mesh.yaml

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: full install (TypeScript) and compile ---------------------------------------------------
FROM ${NODE_IMAGE} AS build
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
