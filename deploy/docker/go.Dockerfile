# The Go orchestrator. Base images are arguments so that machines without a registry
# can pass images they imported themselves (see README, "Compose").
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${GO_IMAGE} AS build
WORKDIR /src/services/orchestrator-go
COPY services/orchestrator-go/go.mod services/orchestrator-go/go.sum ./
RUN go mod download
COPY services/orchestrator-go/ ./
RUN CGO_ENABLED=0 go build -trimpath -o /out/ ./cmd/...

FROM ${RUNTIME_IMAGE}
RUN useradd --system --uid 10001 taskloom && mkdir -p /data && chown taskloom /data
COPY --from=build /out/taskloom-orchestrator /usr/local/bin/
USER taskloom
ENV TASKLOOM_GRPC_ADDR=0.0.0.0:50051 TASKLOOM_HTTP_ADDR=0.0.0.0:9101 TASKLOOM_DATA_DIR=/data
EXPOSE 50051 9101
ENTRYPOINT ["taskloom-orchestrator"]
