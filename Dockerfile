# syntax=docker/dockerfile:1
# Sutra Embedder image. Targets:
#   runtime      (default) CPU: docker build -t sutra-embedder .
#   runtime-gpu  CUDA 12:   docker build --target runtime-gpu -t sutra-embedder:gpu .
#                run with:  docker run --gpus all -p 8080:8080 sutra-embedder:gpu
# Both run as a non-root user, listen on 0.0.0.0:8080 (every protocol on one port), keep
# user models in /models and the document job store in /data, and report health to Docker
# through GET /v1/health. See docs/DEPLOY.md.

ARG NODE_IMAGE=node:20-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

# ---- build: production dependencies, the compiled JavaScript (dist/), the default model (ONNX + gated
#      variants), the bundles
FROM ${NODE_IMAGE} AS build
# better-sqlite3 compiles from source when no prebuilt binary matches.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# CPU builds of onnxruntime ship in the npm package; the CUDA files are fetched only in build-gpu.
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
# Dependencies first (their layer survives source edits); their install scripts run in rebuild.
RUN npm ci --omit=dev --ignore-scripts \
 && npm rebuild better-sqlite3 esbuild onnxruntime-node \
 && npm cache clean --force
COPY tsconfig.json ./
COPY bin ./bin
COPY gen ./gen
COPY src ./src
COPY scripts ./scripts
# `prepare`: compiles src/, gen/ and scripts/ to dist/ with esbuild (the image runs plain JavaScript; no
# TypeScript loader is installed), converts USE-Lite to ONNX with its precision variants, bundles the
# playground and the SDK.
RUN npm run prepare

# ---- build-gpu: the same, plus the CUDA execution provider of onnxruntime-node (from NuGet)
FROM build AS build-gpu
ENV ONNXRUNTIME_NODE_INSTALL=cuda12
RUN npm rebuild onnxruntime-node

# ---- runtime-gpu: CUDA 12 + cuDNN runtime libraries, Node from the Node image
FROM ${NODE_IMAGE} AS node
FROM ${CUDA_IMAGE} AS runtime-gpu
COPY --from=node /usr/local/bin/node /usr/local/bin/node
RUN (userdel --remove ubuntu 2>/dev/null || true) \
 && groupadd --gid 1000 sutra && useradd --uid 1000 --gid sutra --create-home sutra \
 && mkdir -p /models /data && chown sutra:sutra /models /data
WORKDIR /app
COPY --from=build-gpu /app /app
ENV NODE_ENV=production \
    SUTRA_HOST=0.0.0.0 \
    SUTRA_PORT=8080 \
    SUTRA_MODELS_DIR=/models \
    SUTRA_DATA_DIR=/data \
    SUTRA_CUDA=1
USER sutra
EXPOSE 8080
VOLUME ["/models", "/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=90s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.SUTRA_PORT || 8080) + '/v1/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/sutra.mjs"]
CMD ["serve"]

# ---- runtime (default, last so a plain `docker build` makes it): CPU
FROM ${NODE_IMAGE} AS runtime
RUN mkdir -p /models /data && chown node:node /models /data
WORKDIR /app
# Owned by root and read-only to the service user: the service writes only /models, /data and /tmp.
COPY --from=build /app /app
ENV NODE_ENV=production \
    SUTRA_HOST=0.0.0.0 \
    SUTRA_PORT=8080 \
    SUTRA_MODELS_DIR=/models \
    SUTRA_DATA_DIR=/data
USER node
EXPOSE 8080
VOLUME ["/models", "/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.SUTRA_PORT || 8080) + '/v1/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/sutra.mjs"]
CMD ["serve"]
