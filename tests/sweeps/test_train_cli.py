"""``sweeps train`` end to end: the real CLI, Lightning training on tiny data, a real MLflow SQLite store."""

from __future__ import annotations

import ast
import math
import os
from pathlib import Path

import pytest
import torch
import yaml

from models.optimizers import REGISTRY
from sweeps.config.train import TrainConfig, load
from sweeps.engine.training import run_params
from sweeps.engine.workload import build_module, checked_datamodule, optimizer_plan
from sweeps.masking import mask
from sweeps.tracking.runs import flat_params
from sweeps.workdir import DEFAULT_FOLDER, FOLDER_ENV, RUNS
from tests.sweeps.helpers import (
    TRAIN_YAML,
    needs_fashion_mnist,
    open_store,
    run_count,
    squash,
    sweeps_process,
    tiny,
)
from tests.sweeps.helpers import invoke as sweeps

EPOCH_METRICS = ("train_loss", "val_loss", "val_acc", "epoch_seconds")


def train(*args: str):
    return sweeps("train", str(TRAIN_YAML), *args)


def only_run(store, experiment: str | None = None):
    runs = store.runs(experiment)
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


# --- one run per registry optimizer ---------------------------------------------------------------------

# Extra overrides per optimizer and the params they must produce (values as MLflow stores them).
SPECIFIC: dict[str, tuple[list[str], dict[str, object]]] = {
    "sgd": ([], {"lr": 1e-3, "weight_decay": 0.0}),
    "momentum": (
        ["optimizer.form=ema", "optimizer.momentum=0.8"],
        {"momentum": 0.8, "dampening": 0.8, "form": "ema", "nesterov": False},
    ),
    "nesterov": (["optimizer.momentum=0.95"], {"momentum": 0.95, "dampening": 0.0, "nesterov": True}),
    "adagrad": ([], {"lr": 1e-2, "lr_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10}),
    "adadelta": (["optimizer.rho=0.95"], {"rho": 0.95, "lr": 1.0, "eps": 1e-6}),
    "rmsprop": (["optimizer.alpha=0.9"], {"alpha": 0.9, "centered": False, "momentum": 0.0}),
    "adam": (
        ["optimizer.lr=3e-4", "optimizer.betas=[0.8, 0.99]"],
        {"lr": 3e-4, "betas": (0.8, 0.99), "eps": 1e-8, "amsgrad": False},
    ),
    "adamw": ([], {"betas": (0.9, 0.999), "weight_decay": 1e-2}),
    "nadam": ([], {"momentum_decay": 4e-3, "betas": (0.9, 0.999)}),
    "radam": (["optimizer.weight_decay=1e-4"], {"weight_decay": 1e-4}),
    "adamax": ([], {"lr": 2e-3, "betas": (0.9, 0.999)}),
}


def test_every_registry_optimizer_has_a_case_here():
    assert set(SPECIFIC) == set(REGISTRY)


def param_value(text: str) -> object:
    """A param as MLflow stores it (a string) back as a Python value: '0.9' -> 0.9, '(0.9, 0.99)' -> tuple."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


@pytest.mark.parametrize("name", list(REGISTRY))
def test_each_optimizer_is_built_as_configured_and_steps_the_network(name, tiny_data):
    """Per optimizer, without a run: the params a run records (as MLflow stores them) hold every
    hyperparameter with the configured values, torch's optimizer is built with exactly those, and one step
    on a real batch moves the weights. One whole run is below."""
    extra, expected = SPECIFIC[name]
    cfg = load(TRAIN_YAML, tiny(tiny_data, f"optimizer.name={name}", "trainer.seed=7", *extra))
    plan = optimizer_plan(cfg)
    params = flat_params(run_params(cfg, plan))
    assert params["optimizer"] == name
    for hyperparameter in REGISTRY[name].hyperparams:
        assert hyperparameter in params, (hyperparameter, params)
    for key, value in expected.items():
        assert param_value(params[key]) == value, (key, params[key])

    datamodule = checked_datamodule(cfg)
    module = build_module(cfg, datamodule).module
    optimizer = module.configure_optimizers()
    for key, value in plan.spec.torch_kwargs(plan.hparams).items():
        assert param_value(params[key]) == value == optimizer.defaults[key], (key, optimizer.defaults)
    datamodule.setup("fit")
    x, y = next(iter(datamodule.train_dataloader()))
    before = [p.detach().clone() for p in module.parameters()]
    torch.nn.functional.cross_entropy(module(x), y).backward()
    optimizer.step()
    assert any(not torch.equal(old, new) for old, new in zip(before, module.parameters(), strict=True))


@pytest.mark.parametrize("name", ["adam"])
def test_train_records_one_complete_run(name, tiny_data, store, tmp_path):
    extra, expected = SPECIFIC[name]
    overrides = tiny(tiny_data, f"optimizer.name={name}", "trainer.seed=7", *extra)

    result = train(*overrides, "--tracking-uri", store.uri)

    assert result.exit_code == 0, result.output
    assert "done best val_acc" in result.stdout
    run = only_run(store)
    assert run.info.status == "FINISHED"
    assert run.data.tags["sweeps.outcome"] == "finished"

    params = run.data.params
    assert params["optimizer"] == name
    assert params["batch_size"] == "64"
    assert params["seed"] == "7"
    assert params["dataset"] == "mnist"
    assert params["epochs"] == "2"
    spec = REGISTRY[name]
    for hyperparameter in spec.hyperparams:  # every hyperparameter of the optimizer, overridden or not
        assert hyperparameter in params, (hyperparameter, params)
    for key, value in expected.items():
        assert param_value(params[key]) == value, (key, params[key])
    resolved = spec.resolve("torch", **load(TRAIN_YAML, overrides).optimizer.overrides())
    for key, value in spec.torch_kwargs(resolved).items():  # and exactly what torch was given
        assert param_value(params[key]) == value, (key, params[key])

    for key in EPOCH_METRICS:
        history = store.history(run.info.run_id, key)
        assert [step for step, _ in history] == [1, 2], (key, history)
        assert all(math.isfinite(v) for _, v in history), (key, history)
    val_acc = [v for _, v in store.history(run.info.run_id, "val_acc")]
    assert all(0.0 <= v <= 1.0 for v in val_acc)
    assert all(v > 0 for _, v in store.history(run.info.run_id, "epoch_seconds"))
    assert run.data.metrics["best_val_acc"] == max(val_acc)
    epoch_seconds = sum(v for _, v in store.history(run.info.run_id, "epoch_seconds"))
    assert run.data.metrics["total_seconds"] >= epoch_seconds > 0

    artifacts = [a.path for a in store.client.list_artifacts(run.info.run_id)]
    assert "config.yaml" in artifacts
    local = store.client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path / "fetched"))
    recorded = yaml.safe_load(Path(local).read_text())
    assert TrainConfig.model_validate(recorded) == load(TRAIN_YAML, overrides)
    assert recorded["optimizer"]["name"] == name
    assert recorded["data"]["dir"] == str(tiny_data)

    # The embedded store keeps artifacts beside its database; nothing lands in ./mlruns.
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())
    assert not (tmp_path / "mlruns").exists()


def test_run_name_experiment_and_environment_tags_are_recorded(tiny_data, store):
    result = train(
        *tiny(tiny_data, "experiment=my-exp", "run_name=first", "trainer.max_epochs=1"),
        "--tracking-uri",
        store.uri,
    )

    assert result.exit_code == 0, result.output
    run = only_run(store, "my-exp")
    assert run.info.run_name == "first"
    assert run.data.tags["sweeps.version.torch"]
    assert run.data.tags["sweeps.device"] == "cpu"
    assert [s for s, _ in store.history(run.info.run_id, "val_acc")] == [1]


@pytest.mark.gpu
def test_training_runs_on_the_gpu(tiny_data, store):
    result = train(
        *tiny(tiny_data, "trainer.accelerator=gpu", "trainer.max_epochs=1"), "--tracking-uri", store.uri
    )

    assert result.exit_code == 0, result.output
    run = only_run(store)
    assert run.data.tags["sweeps.device"] != "cpu"
    assert [s for s, _ in store.history(run.info.run_id, "val_acc")] == [1]


@pytest.mark.parametrize("batch_size", ["full", "1"])
def test_batch_gradient_descent_and_pure_sgd_run(batch_size, tmp_path, write_idx_dataset, store):
    folder = tmp_path / "small"
    write_idx_dataset(folder, n_train=48, n_test=16)

    result = train(
        *tiny(folder, f"data.batch_size={batch_size}", "trainer.max_epochs=1", "optimizer.name=sgd"),
        "--tracking-uri",
        store.uri,
    )

    assert result.exit_code == 0, result.output
    run = only_run(store)
    assert run.info.status == "FINISHED"
    assert run.data.params["batch_size"] == batch_size


# --- real data ------------------------------------------------------------------------------------------


@needs_fashion_mnist
def test_fashion_mnist_subset_learns_and_records_two_epochs(tmp_path, store):
    nowhere = tmp_path / "no-files-here"  # so only Debian's folder can provide the data
    nowhere.mkdir()

    result = train(
        f"data.dir={nowhere}",
        "data.train_subset=512",
        "data.val_split=holdout",
        "data.holdout_size=256",
        "data.download=false",
        "trainer.max_epochs=2",
        "trainer.accelerator=cpu",
        "--tracking-uri",
        store.uri,
    )

    assert result.exit_code == 0, result.output
    run = only_run(store, "train")
    assert run.info.status == "FINISHED"
    assert run.data.params["dataset"] == "fashion_mnist"
    assert run.data.params["train_subset"] == "512"
    assert run.data.params["val_split"] == "holdout"
    val_acc = store.history(run.info.run_id, "val_acc")
    assert [s for s, _ in val_acc] == [1, 2]
    # Adam learns 10 real classes well above chance (0.1) from 512 images in 2 epochs (measured ~0.7).
    assert run.data.metrics["best_val_acc"] > 0.4
    assert result.stdout.count("epoch ") == 2


# --- refused before anything is created -----------------------------------------------------------------

BAD_RUNS = [
    (["optimizer.lr=-1"], "optimizer.lr"),
    (["optimizer.name=foo"], "optimizer.name"),
    (["optimizer.rho=0.9"], "optimizer.rho"),
    (["data.batch_size=0"], "data.batch_size"),
    (["data.name=cifar10"], "data.name"),
    (["trainer.precision=16"], "trainer.precision"),
    (["trainer.bogus=1"], "trainer.bogus"),
    (["data.name.x=1"], "data.name"),
    (["nokey"], "nokey"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_RUNS, ids=[" ".join(b[0]) for b in BAD_RUNS])
def test_bad_config_exits_2_naming_the_field_and_creates_nothing(overrides, field, tmp_path):
    database = tmp_path / "store" / "mlflow.db"

    result = train(*overrides, "--tracking-uri", f"sqlite:///{database}")

    assert result.exit_code == 2, result.output
    assert "error" in result.stderr
    assert field in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert not database.exists()
    assert not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "mlartifacts").exists()


def test_a_missing_config_file_exits_2(tmp_path):
    result = sweeps("train", str(tmp_path / "nope.yaml"))

    assert result.exit_code == 2
    assert "nope.yaml" in squash(result.stderr)
    assert not (tmp_path / "mlflow.db").exists()


def test_missing_dataset_files_exit_2_saying_where_they_go(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'env.db'}")

    result = train("data.name=mnist", f"data.dir={empty}", "data.download=false")

    assert result.exit_code == 2, result.output
    message = squash(result.stderr)
    assert "'mnist'notfound" in message
    assert squash(f"copy the IDX files (gzipped or not) into {empty}") in message
    assert "train-images-idx3-ubyte" in message
    assert "Traceback" not in result.output
    assert not (tmp_path / "env.db").exists()
    assert not (tmp_path / "mlflow.db").exists()


def test_a_subset_larger_than_the_data_set_exits_2(tiny_data, tmp_path):
    database = tmp_path / "mlflow.db"

    result = train(*tiny(tiny_data, "data.train_subset=100000"), "--tracking-uri", f"sqlite:///{database}")

    assert result.exit_code == 2, result.output
    assert "data.train_subset" in result.stderr
    assert run_count(database) == 0


# --- divergence -----------------------------------------------------------------------------------------


def test_divergence_exits_3_and_marks_the_run_failed(tiny_data, store):
    result = train(*tiny(tiny_data, "optimizer.name=sgd", "optimizer.lr=1e6"), "--tracking-uri", store.uri)

    assert result.exit_code == 3, result.output
    assert "diverged" in result.stdout
    assert "non-finite" in squash(result.stdout)
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    run = only_run(store)
    assert run.info.status == "FAILED"
    assert run.data.tags["sweeps.outcome"] == "diverged"
    assert "non-finite" in run.data.tags["sweeps.reason"]
    assert run.info.run_id in squash(result.stdout)
    # Training stopped at the first epoch instead of running all of them on NaNs.
    assert len(store.history(run.info.run_id, "val_acc")) == 0
    assert "total_seconds" in run.data.metrics


# --- determinism ----------------------------------------------------------------------------------------


def test_same_seed_same_curves_other_seed_other_curves(tiny_data, store):
    for experiment, seed in (("a", 3), ("b", 3), ("c", 4)):
        result = train(
            *tiny(tiny_data, f"experiment={experiment}", f"trainer.seed={seed}"), "--tracking-uri", store.uri
        )
        assert result.exit_code == 0, result.output

    def curves(experiment: str) -> dict[str, list[tuple[int, float]]]:
        run_id = only_run(store, experiment).info.run_id
        return {key: store.history(run_id, key) for key in ("train_loss", "val_acc", "val_loss")}

    a, b, c = curves("a"), curves("b"), curves("c")
    assert a == b
    assert len(a["train_loss"]) == 2
    assert a["train_loss"] != c["train_loss"]
    assert a["val_loss"] != c["val_loss"]


# --- where runs are recorded ----------------------------------------------------------------------------


def test_tracking_uri_flag_beats_the_environment(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'env.db'}")

    result = train(
        *tiny(tiny_data, "trainer.max_epochs=1"), "--tracking-uri", f"sqlite:///{tmp_path / 'flag.db'}"
    )

    assert result.exit_code == 0, result.output
    assert run_count(tmp_path / "flag.db") == 1
    assert not (tmp_path / "env.db").exists()
    assert not (tmp_path / "mlflow.db").exists()


def test_environment_beats_the_default(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'env.db'}")

    result = train(*tiny(tiny_data, "trainer.max_epochs=1"))

    assert result.exit_code == 0, result.output
    assert run_count(tmp_path / "env.db") == 1
    assert not (tmp_path / "mlflow.db").exists()


def test_default_store_is_mlflow_db_in_the_tools_folder(tiny_data, tmp_path, monkeypatch):
    assert "MLFLOW_TRACKING_URI" not in os.environ
    monkeypatch.delenv(FOLDER_ENV)  # the real default, ./sweeps-out/

    result = train(*tiny(tiny_data, "trainer.max_epochs=1"))

    assert result.exit_code == 0, result.output
    folder = tmp_path / DEFAULT_FOLDER
    assert run_count(folder / RUNS) == 1
    run = open_store(folder / RUNS).runs()[0]
    assert run.info.artifact_uri.startswith((folder / "mlartifacts").as_uri())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([DEFAULT_FOLDER, tiny_data.name])


def test_a_flag_given_to_one_run_does_not_stick_to_the_next(tiny_data, tmp_path, store):
    first = train(
        *tiny(tiny_data, "trainer.max_epochs=1"), "--tracking-uri", f"sqlite:///{tmp_path / 'flag.db'}"
    )
    assert first.exit_code == 0, first.output

    second = train(*tiny(tiny_data, "trainer.max_epochs=1"))

    assert second.exit_code == 0, second.output
    assert run_count(tmp_path / "flag.db") == 1
    assert run_count(store.database) == 1  # ./mlflow.db, the default


# --- other commands and helpers -------------------------------------------------------------------------


def test_optimizers_lists_the_whole_registry():
    result = sweeps("optimizers")

    assert result.exit_code == 0, result.output
    first_cells = {line.split("│")[1].strip() for line in result.stdout.splitlines() if line.startswith("│")}
    assert set(REGISTRY) <= first_cells
    assert first_cells - {""} == set(REGISTRY)


def test_no_arguments_shows_help():
    result = sweeps()

    assert "train" in result.output
    assert "optimizers" in result.output
    assert "bench" in result.output


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql+psycopg://user:secret@host/db", "postgresql+psycopg://user:***@host/db"),
        (
            "postgresql+psycopg://user:s3cr%40t!@db.example:5432/test",
            "postgresql+psycopg://user:***@db.example:5432/test",
        ),
        (
            "cannot reach postgresql://a:pw1@h1/db nor mysql://b:pw2@h2/db.",
            "cannot reach postgresql://a:***@h1/db nor mysql://b:***@h2/db.",
        ),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ],
)
def test_mask_hides_passwords_only(text, masked):
    assert mask(text) == masked
    assert "secret" not in mask(text)


@pytest.mark.slow
@pytest.mark.parametrize("verbose", [False, True])
def test_the_libraries_notes_show_only_with_verbose(tiny_data: Path, tmp_path: Path, verbose: bool) -> None:
    args = ["-v"] * verbose + ["train", str(TRAIN_YAML), *tiny(tiny_data, "trainer.max_epochs=1")]
    proc = sweeps_process(*args, "--tracking-uri", f"sqlite:///{tmp_path / 'new.db'}", cwd=tmp_path)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    notes = ("Creating initial MLflow database tables", "not found. Creating it", "GPU available:", "Tip:")
    assert [note in out for note in notes] == [verbose, verbose, verbose, verbose], out
