# syntax=docker/dockerfile:1

# ---- builder: resolve and install dependencies into a self-contained venv ----
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# pyproject's `readme` must exist for the build, so README.md travels with it.
COPY pyproject.toml README.md ./
COPY app/ app/
COPY worker/ worker/
# The SDK is the modelpress-sdk the CLI depends on: installed from its folder in the same run.
COPY sdk/ sdk/
# The cache mount keeps wheels across rebuilds without baking them into a layer.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --upgrade pip && pip install ./sdk .

# ---- runtime: the venv plus the source tree, nothing else ----
FROM python:3.11-slim AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MODELPRESS_DATA_DIR=/data

RUN groupadd --system --gid 10001 modelpress \
 && useradd --system --uid 10001 --gid modelpress --create-home \
        --home-dir /home/modelpress --shell /usr/sbin/nologin modelpress \
 && mkdir -p /data /spool && chown modelpress:modelpress /data /spool

WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
# Source next to the installed package: alembic needs migrations/ and alembic.ini from cwd.
COPY app/ app/
COPY worker/ worker/
COPY migrations/ migrations/
COPY alembic.ini ./

USER modelpress
EXPOSE 8000
# The API by default. A worker: `modelpress worker -- -Q modelpress --concurrency=2`, which starts
# the Celery worker again whenever it exits on its own (see docker-compose.yml).
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000"]
