# The Rust services (cache, metrics, vector) from one workspace build; pick one with
# `--target cache|metrics|vector`.
ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY services/ services/
COPY proto/ proto/
RUN cargo build --release --bin taskloom-cache --bin taskloom-metrics --bin taskloom-vector \
 && mkdir /out && cp target/release/taskloom-cache target/release/taskloom-metrics target/release/taskloom-vector /out/

FROM ${RUNTIME_IMAGE} AS runtime
RUN useradd --system --uid 10001 taskloom && mkdir -p /data && chown taskloom /data
USER taskloom

FROM runtime AS cache
COPY --from=build /out/taskloom-cache /usr/local/bin/
ENV TASKLOOM_GRPC_ADDR=0.0.0.0:50052 TASKLOOM_HTTP_ADDR=0.0.0.0:9102
EXPOSE 50052 9102
ENTRYPOINT ["taskloom-cache"]

FROM runtime AS metrics
COPY --from=build /out/taskloom-metrics /usr/local/bin/
ENV TASKLOOM_GRPC_ADDR=0.0.0.0:50053 TASKLOOM_HTTP_ADDR=0.0.0.0:9103
EXPOSE 50053 9103
ENTRYPOINT ["taskloom-metrics"]

FROM runtime AS vector
COPY --from=build /out/taskloom-vector /usr/local/bin/
ENV TASKLOOM_GRPC_ADDR=0.0.0.0:50054 TASKLOOM_HTTP_ADDR=0.0.0.0:9104 TASKLOOM_VECTOR_DATA_DIR=/data
EXPOSE 50054 9104
ENTRYPOINT ["taskloom-vector"]
