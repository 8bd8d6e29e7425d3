"""Tools beside the sweep engine: ``bench`` (seconds per epoch of three ways to train), ``sweep_bench`` and
``storage_bench`` (the engine's throughput and the storage choices), ``checkpoint_bench`` (what a trial's
checkpoint per epoch costs), ``ui`` with ``servers`` (the MLflow UI
and optuna-dashboard until Ctrl-C), and ``trajectories`` (optimizer paths on 2-D surfaces).

They read the engine's results and stores, train what ``models`` defines and log through
``sweeps.tracking``; nothing below them imports them.
"""
