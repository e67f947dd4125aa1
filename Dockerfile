# syntax=docker/dockerfile:1
# Tetra broker image: a build stage compiles the TypeScript, a production-dependencies stage installs only
# what the broker loads, and a slim runtime stage runs `node dist/src/cli.js` as the non-root `node` user.
#
#   docker build -t tetra .
#   docker run -p 1883:1883 -p 8080:8080 -v tetra-data:/data \
#     -v "$PWD/auth.json:/etc/tetra/auth.json:ro" -e TETRA_AUTH_FILE=/etc/tetra/auth.json tetra
#
# Debian (glibc) slim rather than Alpine: classic-level (LevelDB) ships prebuilt binaries for linux-x64 and
# linux-arm64 on glibc, none for musl, so nothing is compiled here and no toolchain is needed.
# Node 20 LTS: package.json's engines asks for >=20.10.

# ---- build: all dependencies (TypeScript), then `npm run build` -> dist/
FROM node:20-bookworm-slim AS build
WORKDIR /app
# The lock holds every platform's optional packages (esbuild, rollup), so `npm ci` installs from it as is.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

# ---- deps: production dependencies only, a fresh install from the same lock (no dev dependency is present)
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# ---- runtime
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/web ./web
COPY package.json LICENSE ./

# /data is the LevelDB directory, owned by the `node` user (uid 1000, gid 1000) that runs the broker; a named
# volume mounted there starts with this ownership. /etc/tetra is where the auth file and TLS files are mounted
# (read-only is enough: the broker only reads them, and reloads them on SIGHUP or when they change).
RUN mkdir -p /data /etc/tetra && chown node:node /data

# Listen on every interface, keep the data in the volume. Binding 0.0.0.0 without an auth file makes the
# broker refuse to start (exit 2): set TETRA_AUTH_FILE (e.g. /etc/tetra/auth.json), or
# TETRA_ALLOW_ANONYMOUS=true to allow anonymous access on purpose. TLS (MQTT on 8883, HTTPS/WSS on 8080)
# turns on with TETRA_TLS_CERT and TETRA_TLS_KEY (and TETRA_TLS_CA for client certificates), e.g.
# /etc/tetra/tls/tls.crt, /etc/tetra/tls/tls.key, /etc/tetra/tls/ca.crt.
ENV TETRA_HOST=0.0.0.0 \
    TETRA_DATA_DIR=/data \
    TETRA_MQTT_PORT=1883 \
    TETRA_MQTTS_PORT=8883 \
    TETRA_HTTP_PORT=8080
# The V8 flag the broker's throughput relies on. Without it the broker starts itself again in a child process
# that has it (and passes signals on); given here, the broker is the one process of the container, PID 1.
ENV NODE_OPTIONS=--max-semi-space-size=32

USER node
VOLUME ["/data"]
# 1883 MQTT, 8883 MQTT over TLS (with TETRA_TLS_CERT), 8080 HTTP: REST, SSE, /mqtt WebSocket, /metrics, dashboard
EXPOSE 1883 8883 8080

# Liveness with node itself (the slim image has no curl): GET /healthz on TETRA_HTTP_PORT, over HTTPS when
# TLS is on (the certificate is not checked: this is the container talking to itself on 127.0.0.1).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const tls = Boolean(process.env.TETRA_TLS_CERT); require(tls ? 'node:https' : 'node:http').get({ host: '127.0.0.1', port: Number(process.env.TETRA_HTTP_PORT || 8080), path: '/healthz', rejectUnauthorized: false, timeout: 4000 }, (res) => process.exit(res.statusCode === 200 ? 0 : 1)).on('timeout', () => process.exit(1)).on('error', () => process.exit(1))"]

# SIGTERM (docker stop) reaches the broker directly as PID 1 (exec form, no shell; the broker handles SIGTERM,
# SIGINT and SIGHUP itself): it drains and exits within --shutdown-timeout (TETRA_SHUTDOWN_TIMEOUT, 10 s by
# default), so give `docker run --stop-timeout` / `docker stop -t` a few seconds more than that (Docker's
# default is 10 s, then SIGKILL). `docker run --init` (tini as PID 1) is optional.
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/cli.js"]
