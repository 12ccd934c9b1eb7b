"""Torch training: the shared NN/LSTM loop, LSTM windows, losses, the monitor and training analytics.

Import the submodules directly (`core.training.trainer`, ...): this package stays light so that
commands that only need trends or analytics do not import torch.
"""
