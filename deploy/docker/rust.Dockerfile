# The Rust services (cache, metrics, vector) from one workspace build; pick one with
# `--target cache|metrics|vector`. Base images are build arguments (see go.Dockerfile);
# BINARIES=prebuilt takes the binaries `make build` put in bin/. Needs BuildKit.
ARG RUST_IMAGE
ARG RUNTIME_IMAGE
ARG BINARIES

FROM ${RUST_IMAGE:-rust:1.95-bookworm} AS binaries-source
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY services/ services/
COPY proto/ proto/
RUN cargo build --release --bin taskloom-cache --bin taskloom-metrics --bin taskloom-vector \
 && mkdir /out \
 && cp target/release/taskloom-cache target/release/taskloom-metrics target/release/taskloom-vector /out/

FROM scratch AS binaries-prebuilt
COPY bin/taskloom-cache bin/taskloom-metrics bin/taskloom-vector /out/

FROM binaries-${BINARIES:-source} AS binaries

FROM ${RUNTIME_IMAGE:-debian:bookworm-slim} AS runtime
# curl serves the health check; uid 10001 owns nothing but /data.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home taskloom \
 && mkdir -p /data && chown 10001:10001 /data
USER 10001:10001

FROM runtime AS cache
COPY --from=binaries /out/taskloom-cache /usr/local/bin/
ENV TASKLOOM_GRPC_ADDR=0.0.0.0:50052 TASKLOOM_HTTP_ADDR=0.0.0.0:9102
EXPOSE 50052 9102
# /healthz, not /readyz: without Redis the cache still serves from L1, so workers need not wait.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9102/healthz"]
ENTRYPOINT ["taskloom-cache"]

FROM runtime AS metrics
COPY --from=binaries /out/taskloom-metrics /usr/local/bin/
ENV TASKLOOM_GRPC_ADDR=0.0.0.0:50053 TASKLOOM_HTTP_ADDR=0.0.0.0:9103
EXPOSE 50053 9103
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9103/readyz"]
ENTRYPOINT ["taskloom-metrics"]

FROM runtime AS vector
COPY --from=binaries /out/taskloom-vector /usr/local/bin/
ENV TASKLOOM_GRPC_ADDR=0.0.0.0:50054 TASKLOOM_HTTP_ADDR=0.0.0.0:9104 TASKLOOM_VECTOR_DATA_DIR=/data
EXPOSE 50054 9104
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9104/readyz"]
ENTRYPOINT ["taskloom-vector"]
