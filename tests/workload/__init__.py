"""A user's own workload, as a user would write it outside ``models/``: a network, a LightningModule for
another task, a data module and an optimizer, each named in a config by its ``package.module:name`` path."""
