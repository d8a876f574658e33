# The Python services (agent worker, gateway) with the SDK; pick one with
# `--target worker|gateway`.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --system --uid 10001 taskloom
WORKDIR /app
COPY python/constraints.txt python/
COPY python/sdk/ python/sdk/
COPY python/agents/ python/agents/
COPY python/gateway/ python/gateway/
RUN pip install --no-cache-dir -c python/constraints.txt ./python/sdk ./python/agents ./python/gateway
USER taskloom

FROM runtime AS worker
ENV TASKLOOM_HTTP_ADDR=0.0.0.0:9105
EXPOSE 9105
ENTRYPOINT ["python", "-m", "taskloom.agents"]

FROM runtime AS gateway
ENV TASKLOOM_HTTP_ADDR=0.0.0.0:8000
EXPOSE 8000
ENTRYPOINT ["python", "-m", "taskloom.gateway"]
