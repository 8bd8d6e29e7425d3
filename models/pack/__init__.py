"""Trial packs: K trials that share a network, batch size, optimizer rule and epochs, trained as one
stacked model in one process (each its own weights, hyperparameters and seeds), so that one GPU runs many
small trials at once. See :class:`models.pack.module.PackModule`."""

from models.pack.data import PackBatches, PackData
from models.pack.module import Member, PackModule
from models.pack.optim import PackedOptimizer
from models.pack.stack import Stack

__all__ = ["Member", "PackBatches", "PackData", "PackModule", "PackedOptimizer", "Stack"]
