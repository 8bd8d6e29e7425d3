"""The report layer: what a finished sweep found, read back from its study and its MLflow runs.

``results`` collects each optimizer's best trials and their per-epoch curves; ``tables`` turns them into the
seed table and the shoot-out; ``answer`` says who leads, by how much and how surely, first; ``figures`` draws
the page's interactive figures (the learning curves among them), ``search_plots`` Optuna's plots of the
search (on the page and as PNGs); ``publish`` writes it all as files and logs them on the sweep's parent run
(through ``sweeps.tracking``). It reads the engine's results and never the other way round.
"""
