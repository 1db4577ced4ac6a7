# syntax=docker/dockerfile:1
# The OpsLedger operator image: `docker build -t opsledger:0.1.0 .` in the repository root.
# The base is pinned by exact version (add @sha256:… of your registry's copy to pin it fully).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# -- build: the package and its dependencies into a virtualenv ------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/opsledger
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN /opt/opsledger/bin/pip install --no-compile . \
    && /opt/opsledger/bin/opsledger --version

# -- runtime: the virtualenv, git for the CMDB, a numeric non-root user ----------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="opsledger" \
      org.opencontainers.image.description="OpsLedger: ITSM and ITOM native to Kubernetes (the operator)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 opsledger \
    && useradd --uid 10001 --gid 10001 --home-dir /var/lib/opsledger --create-home \
       --shell /usr/sbin/nologin opsledger
COPY --from=build /opt/opsledger /opt/opsledger
# HOME and the CMDB working copy: the chart mounts an emptyDir here, as the root filesystem is
# read-only in the cluster.
ENV PATH=/opt/opsledger/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/opsledger \
    OPSLEDGER_CMDB_WORKDIR=/var/lib/opsledger/cmdb
WORKDIR /var/lib/opsledger
# metrics, health, admission webhook (HTTPS), Alertmanager receiver
EXPOSE 9102 8081 9443 9103
USER 10001:10001
ENTRYPOINT ["opsledger", "run"]
