# ktrdr_assets: the code location image (user code deployment, run workers and step workers all use it).
#
# CPU image (default):   docker build -t ktrdr-assets:$(git rev-parse --short HEAD) .
# CUDA image (GPU nodes): docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 \
#                           -t ktrdr-assets:$(git rev-parse --short HEAD)-cuda .
# The CUDA wheels of torch carry their CUDA runtime; a GPU node needs only the NVIDIA driver and device
# plugin (or NVIDIA's GPU operator). XGBoost stays the CPU build (xgboost-cpu) in both images.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    KTRDR_RAW_DIR=/data/raw \
    KTRDR_WAREHOUSE_DIR=/data/warehouse \
    KTRDR_EXECUTOR=k8s

WORKDIR /opt/ktrdr
# Dependencies first (a layer that changes only with pyproject.toml / constraints.txt).
COPY pyproject.toml constraints.txt README.md ./
COPY ktrdr_assets/__init__.py ktrdr_assets/__init__.py
RUN pip install --extra-index-url "${TORCH_INDEX}" -c constraints.txt -e '.[postgres,k8s]'
# Then the code, the strategies and the raw-file quirks (raw bars and the warehouse live on a volume).
COPY ktrdr_assets ktrdr_assets
COPY data/strategies data/strategies
COPY data/sources.yaml data/sources.yaml
COPY workspace.yaml ./

RUN useradd --uid 10001 --create-home ktrdr && mkdir -p "${DAGSTER_HOME}" /data && chown ktrdr "${DAGSTER_HOME}" /data
USER 10001
EXPOSE 3030
# The Helm chart runs `dagster api grpc` with the deployment's dagsterApiGrpcArgs; this is the same, standalone.
CMD ["dagster", "api", "grpc", "-m", "ktrdr_assets.definitions", "-h", "0.0.0.0", "-p", "3030"]
