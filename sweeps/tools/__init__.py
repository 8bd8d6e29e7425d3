"""Tools beside the sweep engine: ``bench`` and ``throughput`` (seconds per epoch of three ways to train,
trials per hour; ``measuring``: what their measuring processes share), ``sweep_bench`` and ``storage_bench``
(the engine's throughput and the storage choices), ``checkpoint_bench`` (what a trial's checkpoint per epoch
costs), ``help_bench`` (how fast the command line answers), ``gpu_check``, ``ui`` with ``servers`` (the MLflow
UI and optuna-dashboard until Ctrl-C), and ``trajectories`` (optimizer paths on 2-D surfaces).

They read the engine's results and stores, train what ``models`` defines and log through
``sweeps.tracking``; nothing below them imports them.
"""
