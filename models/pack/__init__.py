"""Trial packs: K trials that share a network, batch size, optimizer rule and epochs, trained as one
stacked model in one process (each its own weights, hyperparameters and seeds), so that one GPU runs many
small trials at once. See :class:`models.pack.module.PackModule`."""
