# The Go orchestrator. Base images are build arguments, so that machines without a registry
# can pass images they made themselves (scripts/base-image.sh). BINARIES=prebuilt takes the
# binary that `make build` put in bin/ instead of compiling it again (CI). Needs BuildKit.
ARG GO_IMAGE
ARG RUNTIME_IMAGE
ARG BINARIES

FROM ${GO_IMAGE:-golang:1.26-bookworm} AS binaries-source
WORKDIR /src/services/orchestrator-go
COPY services/orchestrator-go/go.mod services/orchestrator-go/go.sum ./
RUN go mod download
COPY services/orchestrator-go/ ./
RUN CGO_ENABLED=0 go build -trimpath -o /out/ ./cmd/taskloom-orchestrator

FROM scratch AS binaries-prebuilt
COPY bin/taskloom-orchestrator /out/

FROM binaries-${BINARIES:-source} AS binaries

FROM ${RUNTIME_IMAGE:-debian:bookworm-slim}
# curl serves the health check; uid 10001 owns nothing but /data.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home taskloom \
 && mkdir -p /data && chown 10001:10001 /data
COPY --from=binaries /out/taskloom-orchestrator /usr/local/bin/
USER 10001:10001
ENV TASKLOOM_GRPC_ADDR=0.0.0.0:50051 TASKLOOM_HTTP_ADDR=0.0.0.0:9101 TASKLOOM_DATA_DIR=/data
EXPOSE 50051 9101
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9101/readyz"]
ENTRYPOINT ["taskloom-orchestrator"]
