# Redis from Debian's packages, so that the stack needs no image from a registry. Durable
# as the orchestrator's store expects: every write is in the append-only file before Redis
# answers (appendfsync always), so an acknowledged submit survives a crash.
ARG RUNTIME_IMAGE
FROM ${RUNTIME_IMAGE:-debian:bookworm-slim}
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home taskloom \
 && mkdir -p /data && chown 10001:10001 /data
USER 10001:10001
WORKDIR /data
EXPOSE 6379
HEALTHCHECK --interval=2s --timeout=3s --start-period=30s CMD ["redis-cli", "ping"]
# protected-mode off: other containers connect without a password, so keep Redis on a
# private network (compose's default network; a ClusterIP Service in Kubernetes).
CMD ["redis-server", "--dir", "/data", "--appendonly", "yes", "--appendfsync", "always", \
     "--protected-mode", "no", "--save", ""]
