-- MLflow gets a database of its own: it and Optuna both keep an `alembic_version` table.
CREATE DATABASE mlflow;
