"""The config layer: what a user writes, validated before anything runs.

``files`` reads YAML and ``key.sub=value`` overrides and names bad fields; ``train`` is one training run's
config; ``search`` the search block of a sweep; ``sweep`` the sweep spec (a train config, a study and a
search); ``imports`` the ``package.module:name`` paths of user code. It imports the catalogues of ``models``
(optimizers, data sets, schedules) to check names and ranges, an optimizer class named by its path to read
its hyperparameters, and nothing of the engine, tracking or report.
"""
