# The Python services (agent worker, gateway) with the SDK; pick one with
# `--target worker|gateway`. PYTHON_IMAGE is a build argument (any Python 3.11+ image:
# the official one, or Debian's python3 from scripts/base-image.sh). WHEELS=prebuilt takes
# the wheels `make wheels` put in bin/wheels instead of building them again (CI). Needs BuildKit.
ARG PYTHON_IMAGE
ARG WHEELS

FROM ${PYTHON_IMAGE:-python:3.11-slim-bookworm} AS python

FROM python AS wheels-source
WORKDIR /src
COPY python/constraints.txt python/
COPY python/sdk/ python/sdk/
COPY python/agents/ python/agents/
COPY python/gateway/ python/gateway/
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip wheel --no-cache-dir --wheel-dir /wheels -c python/constraints.txt \
      ./python/sdk ./python/agents ./python/gateway

FROM scratch AS wheels-prebuilt
COPY bin/wheels/ /wheels/

FROM wheels-${WHEELS:-source} AS wheels

# The venv is made in a stage of its own so that the wheels stay out of the final layers.
FROM python AS venv
COPY --from=wheels /wheels /wheels
RUN python3 -m venv /opt/taskloom \
 && /opt/taskloom/bin/pip install --no-cache-dir --no-index --find-links /wheels \
      taskloom-agents taskloom-gateway

FROM python AS runtime
RUN useradd --system --uid 10001 --no-create-home taskloom
COPY --from=venv /opt/taskloom /opt/taskloom
ENV PATH=/opt/taskloom/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001

FROM runtime AS worker
ENV TASKLOOM_HTTP_ADDR=0.0.0.0:9105
EXPOSE 9105
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s CMD ["python3", "-c", \
  "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9105/readyz', timeout=2)"]
ENTRYPOINT ["python3", "-m", "taskloom.agents"]

FROM runtime AS gateway
ENV TASKLOOM_HTTP_ADDR=0.0.0.0:8000
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s CMD ["python3", "-c", \
  "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
ENTRYPOINT ["python3", "-m", "taskloom.gateway"]
