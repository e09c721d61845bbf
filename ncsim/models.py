"""The CNN-1D networks, as an ordered list of named blocks and a linear classifier.

Every block's output is a layer tap: `model(x, taps=True)` returns the logits and each block's output
from the same forward pass of the same model object, so layer-wise analysis needs no second copy of a
network. The last block's output is the penultimate feature h (what NC1-NC4 are measured on) and the
classifier is z = W h + b.
"""

from __future__ import annotations

import torch
from torch import nn

from ncsim.spec import RunSpec


class BlockNet(nn.Module):
    """Named blocks applied in order, then `classifier`."""

    def __init__(self, blocks: list[tuple[str, nn.Module]], classifier: nn.Linear):
        super().__init__()
        self.blocks = nn.ModuleDict(blocks)
        self.classifier = classifier

    def forward(self, x: torch.Tensor, taps: bool = False):
        outs = {}
        for name, block in self.blocks.items():
            x = block(x)
            if taps:
                outs[name] = x
        logits = self.classifier(x)
        return (logits, outs) if taps else logits


def _conv(c_in: int, c_out: int, k: int, bn: bool, pool: bool = False) -> nn.Sequential:
    layers = [nn.Conv1d(c_in, c_out, k, padding=k // 2, bias=not bn)]
    layers += [nn.BatchNorm1d(c_out)] if bn else []
    layers += [nn.ReLU()]
    layers += [nn.MaxPool1d(2)] if pool else []
    return nn.Sequential(*layers)


def cnn1d(num_classes: int, width: int = 32, kernel_size: int = 5, batch_norm: bool = True) -> BlockNet:
    """The seed README's network: Conv1d 1->w->2w->4w (ReLU, optional batch norm after each conv),
    global average pooling to a 4w-D penultimate layer (128-D at w=32), Linear 4w->C."""
    w, k = width, kernel_size
    return BlockNet([
        ("conv1", _conv(1, w, k, batch_norm)),
        ("conv2", _conv(w, 2 * w, k, batch_norm)),
        ("conv3", _conv(2 * w, 4 * w, k, batch_norm)),
        ("penultimate", nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten())),
    ], nn.Linear(4 * w, num_classes))


def cnn1d_seed(num_classes: int, width: int = 64) -> BlockNet:
    """The seed repository's code architecture (NC_REFERENCE.md), at width w = 64 exactly as shipped:
    Conv1d(1->w,k7)+BN+ReLU+MaxPool2, Conv1d(w->2w,k5)+BN+ReLU+MaxPool2, Conv1d(2w->4w,k3)+BN+ReLU,
    Conv1d(4w->4w,k3)+BN+ReLU, AdaptiveAvgPool1d(4), Linear(16w->4w)+BN+ReLU (4w-D penultimate,
    256-D at w=64), Linear(4w->C)."""
    w = width
    return BlockNet([
        ("conv1", _conv(1, w, 7, True, pool=True)),
        ("conv2", _conv(w, 2 * w, 5, True, pool=True)),
        ("conv3", _conv(2 * w, 4 * w, 3, True)),
        ("conv4", _conv(4 * w, 4 * w, 3, True)),
        ("pool", nn.Sequential(nn.AdaptiveAvgPool1d(4), nn.Flatten())),
        ("penultimate", nn.Sequential(nn.Linear(16 * w, 4 * w, bias=False), nn.BatchNorm1d(4 * w), nn.ReLU())),
    ], nn.Linear(4 * w, num_classes))


def build(spec: RunSpec, num_classes: int) -> BlockNet:
    """The spec's network for C = `num_classes` classes (the data's Dataset.num_classes)."""
    if spec.model == "cnn1d":
        return cnn1d(num_classes, spec.width or 32, spec.kernel_size, spec.batch_norm)
    return cnn1d_seed(num_classes, spec.width or 64)


def tap_features(outs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The 2-D feature matrices of each tap: a conv block's (N, channels, length) output both
    flattened ("<block>.flat", channels x length features) and channel-pooled ("<block>.pool", the
    mean over length, as in Rangamani et al. 2023); a 2-D output as it is."""
    feats = {}
    for name, out in outs.items():
        if out.dim() == 3:
            feats[f"{name}.flat"] = out.flatten(1)
            feats[f"{name}.pool"] = out.mean(-1)
        else:
            feats[name] = out
    return feats
