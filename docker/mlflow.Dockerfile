# syntax=docker/dockerfile:1
# MLflow tracking server: the official image at the exact version the clients pin (pyproject.toml),
# plus the PostgreSQL driver its backend store needs. Small, and needs no GPU or CUDA layers.
FROM ghcr.io/mlflow/mlflow:v3.17.2

RUN pip install --no-cache-dir "psycopg[binary]>=3.1,<4" \
    && useradd --create-home --uid 1000 mlflow \
    && mkdir -p /mlartifacts \
    && chown mlflow:mlflow /mlartifacts
USER 1000:1000
