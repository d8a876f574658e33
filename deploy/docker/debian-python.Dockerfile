# Python 3 from Debian's packages on a given Debian base: the PYTHON_IMAGE of
# python.Dockerfile on machines without a registry (scripts/base-image.sh builds it).
ARG BASE_IMAGE
FROM ${BASE_IMAGE:-debian:bookworm-slim}
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
CMD ["python3"]
