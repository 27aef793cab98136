"""Wanda (Sun et al. 2023) for 2:4: score each weight by ``|W_nk| * ||x_k||_2``
(the norm of input channel k over the calibration tokens) and keep the 2
highest-scoring weights of each group of 4 along K; no weight update."""

import torch
from torch import nn

from ..nn.sparse24_linear import Sparse24Linear


def wanda_scores(weight: torch.Tensor, stats) -> torch.Tensor:
    return weight.detach().abs().float() * stats.col_norm.float()[None, :]


def wanda_layer(linear: nn.Linear, stats, bits: int = 16, group_size: int = 128) -> Sparse24Linear:
    scores = wanda_scores(linear.weight, stats)
    return Sparse24Linear.from_linear(linear, prune=True, bits=bits, group_size=group_size, scores=scores)
