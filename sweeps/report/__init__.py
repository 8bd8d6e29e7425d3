"""The report layer: what a finished sweep found, read back from its study and its MLflow runs.

``results`` collects each optimizer's best trials and their per-epoch curves; ``tables`` turns them into the
seed table and the shoot-out; ``plots`` draws the curves and Optuna's plots of the search; ``publish`` writes
it all as files and logs them on the sweep's parent run (through ``sweeps.tracking``). It reads the engine's
results and never the other way round.
"""
