# Quantum Trader: the daemon in a container, installed exactly as the README does (make).
# Build:  docker build -t quantum-trader .            (tree models + rule agent)
#         docker build -t quantum-trader --build-arg ML=1 .   (+ PyTorch CPU for N-HiTS/PatchTST)
FROM python:3.11-slim-bookworm

ARG ML=0
# The CPU build of PyTorch: the default wheel pulls several GB of CUDA libraries.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    QT_DATA_DIR=/data \
    QT_LOG__FORMAT=json \
    QT_SERVER__HOST=0.0.0.0 \
    QT_SERVER__PORT=8080

RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 trader \
    && mkdir -p /data /app && chown trader:trader /data /app

WORKDIR /app
USER trader

# Dependency layer: only the lock files, so editing the source does not reinstall the world.
# The versions are pinned (scripts/lock-requirements.sh); torch comes from the CPU index alone.
COPY --chown=trader:trader requirements.lock requirements-ml.lock ./
RUN python3.11 -m venv .venv \
    && .venv/bin/pip install --quiet --upgrade pip \
    && .venv/bin/pip install --quiet -r requirements.lock \
    && if [ "$ML" = "1" ]; then \
        grep -v '^torch==' requirements-ml.lock > /tmp/torch-deps.lock \
        && .venv/bin/pip install --quiet -r /tmp/torch-deps.lock \
        && .venv/bin/pip install --quiet --no-deps --index-url "$TORCH_INDEX" \
            "$(grep '^torch==' requirements-ml.lock)"; \
    fi \
    && touch .venv/.created

# Source layer: the project itself, installed as the README does; every dependency is already
# there at its locked version, so this adds only the package.
COPY --chown=trader:trader . /app
RUN make install PYTHON=python3.11 \
    && if [ "$ML" = "1" ]; then make install-ml PYTHON=python3.11 TORCH_INDEX="$TORCH_INDEX"; fi \
    && .venv/bin/pip check

ENV PATH="/app/.venv/bin:$PATH"
VOLUME ["/data"]
EXPOSE 8080

# The status server's /health: 200 while HEALTHY or DEGRADED, 503 when CRITICAL (no token).
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/health', timeout=4)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["quantum-trader"]
CMD ["run"]
