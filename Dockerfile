# Zoom session logs service. Build: `make docker`. Serve: `docker run -e DATABASE_URL=... IMAGE`.
# Migrate (a one-off, before a new version serves): `docker run --rm -e DATABASE_URL=... IMAGE
# python -m service migrate`.

# ---- builder: the dependencies in a venv, in a layer that changes only with setup.cfg ----
FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /build
COPY setup.cfg ./
# The requirements come from setup.cfg's install_requires, so the code is not needed yet and
# this layer stays cached until a dependency changes.
RUN python -c "import configparser; c = configparser.ConfigParser(); c.read('setup.cfg'); print(c['options']['install_requires'].strip())" > requirements.txt \
 && /opt/venv/bin/pip install -r requirements.txt

# ---- runtime: the venv and the code, no compilers, not root ----
FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PORT=8080
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY service/ ./service/
COPY sql/ ./sql/
COPY migrations/ ./migrations/
USER 10001:10001
EXPOSE 8080
# slim has no curl: ask /healthz with the standard library.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=2); sys.exit(0 if r.status == 200 else 1)"]
CMD ["python", "-m", "service"]
