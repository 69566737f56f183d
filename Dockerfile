# syntax=docker/dockerfile:1
# The Lotse bot: `lotse serve` (every configured channel, periodic jobs, /healthz and /metrics).
#   docker build -t lotse .         (docker-compose.yml builds it as the `bot` and `migrate` image)
#   docker run --env-file .env -p 127.0.0.1:8080:8080 lotse
# Two stages: the build stage has compilers and makes a virtual environment with Lotse and its
# dependencies plus compiled catalogs; the runtime stage copies only that environment.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# Compilers for any dependency that ships no wheel for this platform; never in the runtime image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, in their own layer: a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir bot && touch bot/__init__.py \
    && pip install . \
    && pip uninstall -y lotse \
    && rm -rf bot build lotse.egg-info

COPY bot ./bot
RUN pip install --no-deps . \
    && rm -rf build lotse.egg-info
# Compile the gettext catalogs next to their .po files inside the installed package:
# bot/i18n uses a .mo that is at least as new as its .po instead of compiling at every start.
# `python -P` keeps ./bot (the sources in /src) off sys.path, so this finds the installed one.
RUN locale_dir="$(python -P -c 'import bot.i18n; print(bot.i18n.LOCALE_DIR)')" \
    && pybabel compile --domain lotse --directory "$locale_dir" --statistics \
    && test -f /opt/venv/lib/python3.11/site-packages/bot/i18n/locale/en/LC_MESSAGES/lotse.mo


FROM ${PYTHON_IMAGE} AS runtime
# A system user without login; its home holds the Matrix store (a volume in docker-compose.yml).
RUN groupadd --system --gid 10001 lotse \
    && useradd --system --uid 10001 --gid lotse --home-dir /var/lib/lotse --create-home \
       --shell /usr/sbin/nologin lotse
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY knowledge /app/knowledge
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LOTSE_KNOWLEDGE_DIR=/app/knowledge \
    LOTSE_MATRIX_STORE_DIR=/var/lib/lotse/matrix \
    LOTSE_HTTP_LISTEN=0.0.0.0 \
    LOTSE_HTTP_PORT=8080
USER lotse:lotse
EXPOSE 8080
# The slim image has no curl; Python's urllib fails (exit 1) on any answer other than 2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('LOTSE_HTTP_PORT', '8080') + '/healthz', timeout=4)"]
ENTRYPOINT ["lotse"]
CMD ["serve"]
