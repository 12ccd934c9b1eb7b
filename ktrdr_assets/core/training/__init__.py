"""Torch training: the loop every torch model type shares, sequence windows, losses, the monitor,
training analytics, loss trends and the MLflow tracker.

Import the submodules directly (`core.training.trainer`, ...): this package stays light so that
commands that only need trends or analytics do not import torch.
"""
