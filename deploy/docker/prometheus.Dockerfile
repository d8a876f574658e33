# Prometheus from Debian's packages with Taskloom's scrape configuration and alert rules
# (deploy/prometheus/), so that the stack needs no image from a registry.
ARG RUNTIME_IMAGE
FROM ${RUNTIME_IMAGE:-debian:bookworm-slim}
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home taskloom \
 && mkdir -p /prometheus && chown 10001:10001 /prometheus
COPY deploy/prometheus/prometheus.yml deploy/prometheus/alerts.yml /etc/prometheus/
USER 10001:10001
EXPOSE 9090
# Healthy once its query API answers (Debian's promtool has no `check ready` yet).
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s \
  CMD ["promtool", "query", "instant", "http://127.0.0.1:9090", "vector(1)"]
ENTRYPOINT ["prometheus", "--config.file=/etc/prometheus/prometheus.yml", \
            "--storage.tsdb.path=/prometheus", "--web.listen-address=:9090"]
