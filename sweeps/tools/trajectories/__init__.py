"""Optimizer paths on 2-D loss surfaces: every registry optimizer, real ``torch.optim`` steps, one picture.

Each optimizer starts from the surface's start point with a 2-parameter float64 tensor and takes ``steps``
real steps (zero_grad, backward, step); the points it visits are drawn on the surface's contours, one panel
per surface, and optionally animated into a GIF. A path whose point or loss stops being finite, or that
runs off beyond ``ESCAPE`` (it would overflow a few steps later), is cut there and marked as diverged.

Learning rates: the registry's presets are meant for networks, whose gradients and sensible step lengths
differ from these surfaces'. Where a preset's lr would leave a path invisible (Adam's kin move about ``lr``
per step: 1e-3 for 300 steps is a dot) or make it explode, ``SURFACE_LRS`` sets the lr for that surface, with
the reason in one line. Every other hyperparameter comes from the chosen preset (``torch`` or ``keras``);
``surface_lr=False`` (``--preset-lr``) keeps the preset's lr too, to show what it does here.

``simulate`` runs the optimizers, ``tables`` writes where they ended, ``draw`` and ``gif`` picture them,
``make`` does it all and logs it to MLflow.
"""
