"""The engine: runs a sweep. Its storage (``storage``), the study with its budget queue and retrains
(``study``, ``sampling``), the search space (``space``), the objective that trains a trial (``objective``,
``training``, with ``workload``: what a config names, the seed CNN or the user's code, built and checked;
``epochs``: each epoch's logged metrics; ``checkpoints``: a trial's state saved and resumed), the checks
before a sweep starts (``preflight``, ``servers``), the worker that runs trials until the budget is spent
(``worker``, ``packs``, ``tell``, ``retry``, ``runtime``; ``preemption``: a worker told to stop gives its
trials back; ``placement``: where it runs), and the launcher that starts workers and tells a view how they do
(``launcher``; through SLURM in ``slurm``, through Ray in ``raycluster``).

It reads configs from ``sweeps.config``, trains what ``models`` defines, and writes MLflow only through
``sweeps.tracking``; the report and the tools read its results, never the other way round.
"""
