"""The CNN-1D networks, as an ordered list of named blocks and a linear classifier.

Every block's output is a layer tap: `model(x, taps=True)` returns the logits and each block's output
from the same forward pass of the same model object, so layer-wise analysis needs no second copy of a
network. The last block's output is the penultimate feature h (what NC1-NC4 are measured on) and the
classifier is z = W h + b.

Between blocks, activations are channels-last, (N, length, channels): a convolution block is listed as
its layers (Conv1d, BatchNorm1d, ReLU, MaxPool1d: their parameters, buffers and state-dict names) but
computes them as one channels-last function, the same math in about two thirds of the time on a CPU
(bench/train.py): oneDNN's convolutions are faster on channels-last data, batch norm then normalises a
contiguous (N * length, channels) matrix, ReLU and max pooling are one pass, and in eval mode batch
norm (then an affine map) is folded into the convolution's weights.

Precision (RunSpec.precision, set on a network by `build`): "fp32" computes everything in float32.
"bf16-mixed" computes each convolution of a training pass (train mode, gradients on) in bfloat16, its
input and weights cast once per call and its output cast back to float32, so that oneDNN's bf16 kernels
(AVX-512 BF16 or AMX where the CPU has them) do the multiply-adds, while batch norm, ReLU, pooling, the
linear layers, the master weights and every evaluation stay float32. What was measured and did not pay
(bench/precision.py, docs/performance.md): bf16 activations through batch norm, ReLU and pooling (torch's
CPU kernels for those upcast per element and ran slower than float32: batch-norm backward 645 us
against 366 us per call, ReLU backward 626 against 256), a hand-written batch norm + ReLU from torch
element-wise ops (more passes over memory than the native kernel, slower), and bf16 linear layers (2%
of an epoch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ncsim.spec import RunSpec


class BlockNet(nn.Module):
    """Named blocks applied in order, then `classifier`. Input x: (N, 1, length) signals."""

    def __init__(self, blocks: list[tuple[str, nn.Module]], classifier: nn.Linear):
        super().__init__()
        self.blocks = nn.ModuleDict(blocks)
        self.classifier = classifier

    def set_precision(self, precision: str) -> BlockNet:
        """Use `precision` ("fp32" or "bf16-mixed", ncsim.spec.PRECISIONS) for the convolutions of
        training passes from now on (the module docstring); returns the network."""
        dtype = {"fp32": torch.float32, "bf16-mixed": torch.bfloat16}[precision]
        for block in self.blocks.values():
            if isinstance(block, ConvBlock):
                block.train_dtype = dtype
        return self

    def forward(self, x: torch.Tensor, taps: bool = False):
        outs = {}
        x = x.transpose(1, 2)  # (N, length, 1): channels-last (the same memory for one input channel)
        for name, block in self.blocks.items():
            x = block(x)
            if taps:
                outs[name] = x
        logits = self.classifier(x)
        return (logits, outs) if taps else logits


class ConvBlock(nn.Sequential):
    """Conv1d(k, padding k // 2) [+ BatchNorm1d] + ReLU [+ MaxPool1d(2)] on channels-last activations:
    (N, L, c_in) -> (N, L, c_out), or (N, floor(L / 2), c_out) with pooling."""

    def __init__(self, c_in: int, c_out: int, k: int, bn: bool, pool: bool = False):
        layers = [nn.Conv1d(c_in, c_out, k, padding=k // 2, bias=not bn)]
        layers += [nn.BatchNorm1d(c_out)] if bn else []
        layers += [nn.ReLU()]
        layers += [nn.MaxPool1d(2)] if pool else []
        super().__init__(*layers)
        self.batch_norm, self.pool = bn, pool
        self.train_dtype = torch.float32  # the convolution's dtype in training passes (BlockNet.set_precision)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        conv, weight, bias = self[0], self[0].weight, self[0].bias
        normalise = self.batch_norm and self.training
        if self.batch_norm and not self.training:  # eval mode: batch norm is affine, folded into the conv
            bn = self[1]
            scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
            weight, bias = weight * scale[:, None, None], bn.bias - bn.running_mean * scale
        # (N, L, C) seen as an NCHW tensor (N, C, 1, L) in channels_last memory; a channels_last weight
        # makes oneDNN return channels_last too, i.e. (N, L, c_out) contiguous.
        weight = weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        low = self.train_dtype if self.training and torch.is_grad_enabled() else torch.float32
        if low != torch.float32:
            h, weight, bias = h.to(low), weight.to(low), None if bias is None else bias.to(low)
        y = F.conv2d(h.transpose(1, 2).unsqueeze(2), weight, bias, padding=(0, conv.padding[0]))
        y = y.squeeze(2).transpose(1, 2).contiguous()
        if low != torch.float32:
            y = y.float()
        n, length, c = y.shape
        if normalise:  # over N and L per channel, exactly BatchNorm1d's statistics on (N, C, L)
            y = self[1](y.view(n * length, c)).view(n, length, c)
        if self.pool:
            return relu_maxpool2(y)
        return F.relu(y, inplace=not torch.is_grad_enabled())


class _ReluMaxPool2(torch.autograd.Function):
    """relu(max(y[:, 2i], y[:, 2i+1])) over the length axis of (N, L, C): MaxPool1d(2) of ReLU(y),
    since the two commute, in one pass. Ties send the gradient to the first element, as MaxPool1d."""

    @staticmethod
    def forward(ctx, y):
        n, length, c = y.shape
        pairs = y[:, : length - length % 2].reshape(n, length // 2, 2, c)
        a, b = pairs[:, :, 0], pairs[:, :, 1]
        out = torch.maximum(a, b).clamp_min_(0)
        ctx.length = length
        if ctx.needs_input_grad[0]:
            live = out > 0
            ctx.save_for_backward(live & (a >= b), live)
        return out

    @staticmethod
    def backward(ctx, g):
        to_a, live = ctx.saved_tensors
        ga = g * to_a
        grad = torch.stack((ga, g * live - ga), 2).flatten(1, 2)
        return F.pad(grad, (0, 0, 0, 1)) if ctx.length % 2 else grad


def relu_maxpool2(y: torch.Tensor) -> torch.Tensor:
    return _ReluMaxPool2.apply(y)


class AdaptiveAvgPool(nn.Module):
    """AdaptiveAvgPool1d(size) + Flatten on channels-last (N, L, C): the mean of each of `size`
    bins [floor(i L / size), ceil((i + 1) L / size)) of the length axis (PyTorch's bins), flattened
    channel-major as (N, C * size), the layout the next Linear's weights index."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        length = h.shape[1]
        bins = torch.zeros(self.size, length, dtype=h.dtype, device=h.device)
        for i in range(self.size):
            start, end = (i * length) // self.size, -(-(i + 1) * length // self.size)
            bins[i, start:end] = 1.0 / (end - start)
        return torch.matmul(bins, h).transpose(1, 2).flatten(1)

    def extra_repr(self) -> str:
        return f"output_size={self.size}, flatten=True"


def cnn1d(num_classes: int, width: int = 32, kernel_size: int = 5, batch_norm: bool = True) -> BlockNet:
    """The seed README's network: Conv1d 1->w->2w->4w (ReLU, optional batch norm after each conv),
    global average pooling to a 4w-D penultimate layer (128-D at w=32), Linear 4w->C."""
    w, k = width, kernel_size
    return BlockNet(
        [
            ("conv1", ConvBlock(1, w, k, batch_norm)),
            ("conv2", ConvBlock(w, 2 * w, k, batch_norm)),
            ("conv3", ConvBlock(2 * w, 4 * w, k, batch_norm)),
            ("penultimate", AdaptiveAvgPool(1)),
        ],
        nn.Linear(4 * w, num_classes),
    )


def cnn1d_seed(num_classes: int, width: int = 64) -> BlockNet:
    """The seed repository's code architecture (NC_REFERENCE.md), at width w = 64 exactly as shipped:
    Conv1d(1->w,k7)+BN+ReLU+MaxPool2, Conv1d(w->2w,k5)+BN+ReLU+MaxPool2, Conv1d(2w->4w,k3)+BN+ReLU,
    Conv1d(4w->4w,k3)+BN+ReLU, AdaptiveAvgPool1d(4), Linear(16w->4w)+BN+ReLU (4w-D penultimate,
    256-D at w=64), Linear(4w->C)."""
    w = width
    return BlockNet(
        [
            ("conv1", ConvBlock(1, w, 7, True, pool=True)),
            ("conv2", ConvBlock(w, 2 * w, 5, True, pool=True)),
            ("conv3", ConvBlock(2 * w, 4 * w, 3, True)),
            ("conv4", ConvBlock(4 * w, 4 * w, 3, True)),
            ("pool", AdaptiveAvgPool(4)),
            ("penultimate", nn.Sequential(nn.Linear(16 * w, 4 * w, bias=False), nn.BatchNorm1d(4 * w), nn.ReLU())),
        ],
        nn.Linear(4 * w, num_classes),
    )


def build(spec: RunSpec, num_classes: int) -> BlockNet:
    """The spec's network for C = `num_classes` classes (the data's Dataset.num_classes); with
    spec.classifier "etf" its W is the fixed simplex ETF (fix_etf_classifier)."""
    if spec.model == "cnn1d":
        net = cnn1d(num_classes, spec.width or 32, spec.kernel_size, spec.batch_norm)
    else:
        net = cnn1d_seed(num_classes, spec.width or 64)
    if spec.classifier == "etf":
        fix_etf_classifier(net.classifier)
    return net.set_precision(spec.precision)


def initial_network(spec: RunSpec, num_classes: int) -> BlockNet:
    """The spec's network at initialisation: torch's generator seeded with spec.seed, then build. The
    trainer starts from it (ncsim.train.setup); ncsim.trajectory rebuilds it for a run's epoch 0."""
    torch.manual_seed(spec.seed)
    return build(spec, num_classes)


def simplex_etf(num_classes: int, dim: int) -> torch.Tensor:
    """The C x d simplex ETF of Zhu et al. (NeurIPS 2021, Sec. 5; tding1/Neural-Collapse, models/resnet.py,
    ETF_fc): sqrt(C/(C-1)) (I_C - 1 1^T / C), rows scaled to unit norm, in the first C of the d feature
    coordinates (d >= C). Rows w_c satisfy ||w_c|| = 1 and <w_c, w_c'> = -1/(C-1)."""
    c = num_classes
    if dim < c:
        raise ValueError(f"a fixed simplex ETF of {c} classes needs d >= C features, got d = {dim}")
    etf = (c / (c - 1)) ** 0.5 * (torch.eye(c) - torch.ones(c, c) / c)
    etf = etf / etf.norm(dim=1, keepdim=True)
    return torch.cat([etf, torch.zeros(c, dim - c)], dim=1)


def fix_etf_classifier(classifier: nn.Linear) -> None:
    """Set W to simplex_etf and freeze it (requires_grad False: no optimizer or weight decay moves it);
    the bias b stays trainable, as in Zhu et al.'s code."""
    with torch.no_grad():
        classifier.weight.copy_(simplex_etf(*classifier.weight.shape))
    classifier.weight.requires_grad_(False)


def reference_forward(model: BlockNet, x: torch.Tensor) -> torch.Tensor:
    """The logits of `model` computed layer by layer with torch.nn's own modules on (N, C, L) tensors
    (each ConvBlock as the nn.Sequential of its layers, AdaptiveAvgPool as AdaptiveAvgPool1d + Flatten):
    the definition the channels-last forward is tested against (tests/test_models.py) and timed against
    (bench/train.py). Same parameters and buffers: in train mode it updates the batch-norm statistics."""
    for block in model.blocks.values():
        if isinstance(block, ConvBlock):
            x = nn.Sequential.forward(block, x)
        elif isinstance(block, AdaptiveAvgPool):
            x = F.adaptive_avg_pool1d(x, block.size).flatten(1)
        else:
            x = block(x)
    return model.classifier(x)


def tap_features(outs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The 2-D feature matrices of each tap: a conv block's (N, length, channels) output both
    flattened ("<block>.flat", length x channels features) and channel-pooled ("<block>.pool", the
    mean over length, as in Rangamani et al. 2023); a 2-D output as it is. The order of the flattened
    features is immaterial: every metric is invariant under a permutation of feature coordinates."""
    feats = {}
    for name, out in outs.items():
        if out.dim() == 3:
            feats[f"{name}.flat"] = out.flatten(1)
            feats[f"{name}.pool"] = out.mean(1)
        else:
            feats[name] = out
    return feats
