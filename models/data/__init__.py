"""MNIST-family data: the catalogue of data sets (``catalogue``, plain Python so that validating a config does
not import torch), IDX files (``idx``), finding or downloading them (``files``) and the Lightning data module
that holds a data set as tensors on the training device (``module``)."""
