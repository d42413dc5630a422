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
    QT_DATA_DIR=/data \
    QT_LOG__FORMAT=json

RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 trader \
    && mkdir -p /data && chown trader:trader /data

WORKDIR /app
COPY --chown=trader:trader . /app
USER trader

RUN make install PYTHON=python3.11 \
    && if [ "$ML" = "1" ]; then make install-ml PYTHON=python3.11 TORCH_INDEX="$TORCH_INDEX"; fi

ENV PATH="/app/.venv/bin:$PATH"
VOLUME ["/data"]

# The daemon touches $QT_DATA_DIR/heartbeat every minute of real time while it runs.
HEALTHCHECK --interval=60s --timeout=5s --start-period=120s --retries=3 \
    CMD find /data/heartbeat -mmin -3 | grep -q . || exit 1

STOPSIGNAL SIGTERM
ENTRYPOINT ["quantum-trader"]
CMD ["run"]
