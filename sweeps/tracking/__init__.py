"""The tracking layer: everything that creates, writes or closes an MLflow run.

``uris`` says where runs go; ``environment`` what each run records about its origin; ``runs`` the lifecycle
of a sweep's runs (parent, trial, seed, lost runs, the parent's best, files); ``fit`` the record of one
training run around Lightning's MLflow logger; ``artifacts`` the checkpoints kept on a tracking server and the
models logged to runs. It imports only ``sweeps.names``, ``sweeps.masking``, ``sweeps.environ`` and MLflow
(Lightning's logger for ``fit``): the engine, the report and the tools call it, never the other way round.
"""
