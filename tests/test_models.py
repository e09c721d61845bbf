"""The channels-last forward of ncsim.models computes the same network as torch.nn's layers applied
one by one (models.reference_forward): same logits, gradients and batch-norm statistics, up to float32
rounding (sums taken in another order), and exactly the same routing of max-pooling gradients."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from ncsim import models
from ncsim.spec import RunSpec

SEED_MODEL = RunSpec(model="cnn1d-seed", width=8)
PLAIN = RunSpec(model="cnn1d", width=8)
PLAIN_NO_BN = RunSpec(model="cnn1d", width=8, batch_norm=False)


def _step(net, forward, x, y):
    net.zero_grad(set_to_none=True)
    logits = forward(x)
    F.cross_entropy(logits, y).backward()
    return logits.detach(), {k: p.grad.clone() for k, p in net.named_parameters()}


@pytest.mark.parametrize("spec", [SEED_MODEL, PLAIN, PLAIN_NO_BN], ids=["cnn1d-seed", "cnn1d", "cnn1d-no-bn"])
@pytest.mark.parametrize("length", [40, 41, 7])
def test_forward_matches_the_layer_by_layer_network(spec, length):
    torch.manual_seed(0)
    fast = models.build(spec, 10).train()
    ref = copy.deepcopy(fast)
    x, y = torch.randn(64, 1, length), torch.randint(0, 10, (64,))
    for _ in range(2):  # the second step runs on batch-norm statistics both updated once
        z_fast, g_fast = _step(fast, fast, x, y)
        z_ref, g_ref = _step(ref, lambda v: models.reference_forward(ref, v), x, y)
        # float32 sums in another order: 1e-5 of the largest logit (~100 ulps); a gradient sums up to
        # N L = 2560 terms that largely cancel, so 1e-4 of its largest entry
        np.testing.assert_allclose(z_fast, z_ref, rtol=0, atol=1e-5 * float(z_ref.abs().max()))
        for name, g in g_ref.items():
            np.testing.assert_allclose(g_fast[name], g, rtol=0, atol=1e-4 * float(g.abs().max()), err_msg=name)
    state, want = fast.state_dict(), ref.state_dict()
    assert list(state) == list(want)
    for name, v in want.items():
        v = v.float()
        np.testing.assert_allclose(state[name].float(), v, rtol=0, atol=1e-5 * float(v.abs().max()), err_msg=name)
    fast.eval(), ref.eval()
    with torch.no_grad():
        z_ref = models.reference_forward(ref, x)
        np.testing.assert_allclose(fast(x), z_ref, rtol=0, atol=1e-5 * float(z_ref.abs().max()))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(2, 9), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_relu_maxpool_routes_gradients_as_maxpool1d(n, length, channels, seed):
    """Small integers make ties frequent: the gradient goes to the first of two equal elements, and
    nowhere where the pooled value is <= 0, exactly as MaxPool1d(2) after ReLU."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(-2, 3, (n, length, channels), generator=g).float()
    upstream = torch.randn(n, length // 2, channels, generator=g)
    a = y.clone().requires_grad_()
    out = models.relu_maxpool2(a)
    out.backward(upstream)
    b = y.transpose(1, 2).clone().requires_grad_()  # (N, C, L) for the torch.nn reference
    want = F.max_pool1d(F.relu(b), 2)
    want.backward(upstream.transpose(1, 2))
    assert torch.equal(out, want.transpose(1, 2))
    assert torch.equal(a.grad, b.grad.transpose(1, 2))


@pytest.mark.parametrize("length,size", [(10, 4), (10, 1), (12, 4), (7, 3), (3, 5)])
def test_adaptive_avg_pool_is_torch_bins_channel_major(length, size):
    h = torch.randn(5, length, 6, dtype=torch.float64)
    want = F.adaptive_avg_pool1d(h.transpose(1, 2), size).flatten(1)
    torch.testing.assert_close(models.AdaptiveAvgPool(size)(h), want, rtol=1e-12, atol=1e-12)


def test_taps_are_channels_last_block_outputs():
    """A conv tap is (N, length, channels); its .pool features are the mean over length, .flat all of
    them (as the (N, C, L) output of the reference network, in another coordinate order)."""
    torch.manual_seed(0)
    net = models.build(SEED_MODEL, 10).eval()
    x = torch.randn(4, 1, 40)
    with torch.no_grad():
        _, outs = net(x, taps=True)
        ref = x
        for name, block in net.blocks.items():
            if name == "pool":
                break
            ref = torch.nn.Sequential.forward(block, ref)
            torch.testing.assert_close(outs[name], ref.transpose(1, 2))
    feats = models.tap_features(outs)
    torch.testing.assert_close(feats["conv4.pool"], ref.mean(-1))
    torch.testing.assert_close(feats["conv4.flat"].sort(1).values, ref.flatten(1).sort(1).values)


@pytest.mark.parametrize("num_classes, dim", [(2, 2), (4, 6), (10, 10), (10, 128)])
def test_simplex_etf_has_unit_rows_at_equal_obtuse_angles(num_classes, dim):
    W = models.simplex_etf(num_classes, dim).double()
    gram = W @ W.T
    want = torch.full((num_classes, num_classes), -1 / (num_classes - 1), dtype=torch.float64)
    want.fill_diagonal_(1.0)
    torch.testing.assert_close(gram, want, rtol=0, atol=1e-6)
    assert W.shape == (num_classes, dim) and (W[:, num_classes:] == 0).all()
    torch.testing.assert_close(W.sum(0), torch.zeros(dim, dtype=torch.float64), rtol=0, atol=1e-6)


def test_simplex_etf_needs_as_many_features_as_classes():
    with pytest.raises(ValueError, match="needs d >= C features, got d = 9"):
        models.simplex_etf(10, 9)


@pytest.mark.parametrize("model", ["cnn1d", "cnn1d-seed"])
def test_an_etf_classifier_is_fixed_and_its_bias_is_trained(model):
    net = models.build(RunSpec(model=model, width=8, classifier="etf"), 10)
    assert not net.classifier.weight.requires_grad and net.classifier.bias.requires_grad
    torch.testing.assert_close(net.classifier.weight, models.simplex_etf(10, 32))
    learned = models.build(RunSpec(model=model, width=8), 10)
    assert learned.classifier.weight.requires_grad


BF16 = "bf16-mixed"


class _Bf16(torch.autograd.Function):
    """Round to bfloat16 (round to nearest even) and back, the value forward and the gradient backward:
    what a cast to bf16 and back does on each side of a bf16 convolution."""

    @staticmethod
    def forward(ctx, t):
        return t.bfloat16().float()

    @staticmethod
    def backward(ctx, g):
        return g.bfloat16().float()


def _bf16_convolutions(net):
    """`net` with each Conv1d computing on bf16-rounded input, weights and bias, summing in float32 and
    rounding its output (and the gradients through it) to bf16: oneDNN's bf16 convolution, emulated with
    torch.nn's float32 layer, for the reference."""
    r = _Bf16.apply
    for conv in [m for m in net.modules() if isinstance(m, torch.nn.Conv1d)]:
        conv.forward = lambda x, c=conv: r(
            F.conv1d(r(x), r(c.weight), None if c.bias is None else r(c.bias), padding=c.padding)
        )
    return net


@pytest.mark.parametrize("spec", [SEED_MODEL, PLAIN, PLAIN_NO_BN], ids=["cnn1d-seed", "cnn1d", "cnn1d-no-bn"])
def test_bf16_mixed_training_pass_matches_the_layer_by_layer_network_to_bf16_rounding(spec):
    """The bf16-mixed training pass against torch.nn's layers with the convolutions' operands and
    results rounded to bf16 (8 significant bits): the same logits, gradients and batch-norm statistics
    up to float32 summation order, which can move a result by one bf16 step (2^-8) where it sits near a
    rounding boundary. Logits and statistics agree to 1% of their largest entry; a weight gradient to
    10%: behind batch norm each of its entries sums N L terms of mean zero (batch norm's backward
    projects out the mean), so one bf16 step in a few of them is a larger share of the sum (at most 7%
    measured, against 22% for the float32 network). And the logits are far from the float32 network's
    (the bf16 kernels did run)."""
    torch.manual_seed(0)
    fast = models.build(spec.replace(precision=BF16), 10).train()
    ref = _bf16_convolutions(copy.deepcopy(fast).set_precision("fp32"))
    full = copy.deepcopy(fast).set_precision("fp32")
    x, y = torch.randn(64, 1, 40), torch.randint(0, 10, (64,))
    z_fast, g_fast = _step(fast, fast, x, y)
    z_ref, g_ref = _step(ref, lambda v: models.reference_forward(ref, v), x, y)
    z_full, _ = _step(full, full, x, y)
    assert z_fast.dtype == torch.float32 and all(g.dtype == torch.float32 for g in g_fast.values())
    scale = float(z_ref.abs().max())
    np.testing.assert_allclose(z_fast, z_ref, rtol=0, atol=1e-2 * scale)
    assert float((z_fast - z_full).abs().max()) > 1e-4 * scale
    for name, g in g_ref.items():
        np.testing.assert_allclose(g_fast[name], g, rtol=0, atol=0.1 * float(g.abs().max()), err_msg=name)
    for name, v in ref.state_dict().items():  # the batch-norm statistics of the bf16 pass
        v = v.float()
        np.testing.assert_allclose(
            fast.state_dict()[name].float(), v, rtol=0, atol=1e-2 * float(v.abs().max()) + 1e-6, err_msg=name
        )


def test_bf16_mixed_evaluates_and_recomputes_statistics_in_float32():
    """Eval mode, and train-mode forwards without gradients (precise batch norm's), are the float32
    network's exactly: bf16 is for the training passes only."""
    torch.manual_seed(0)
    low = models.build(SEED_MODEL.replace(precision=BF16), 10)
    full = copy.deepcopy(low).set_precision("fp32")
    x = torch.randn(32, 1, 40)
    with torch.no_grad():
        assert torch.equal(low.eval()(x), full.eval()(x))
        assert torch.equal(low.train()(x), full.train()(x))
    assert all(p.dtype == torch.float32 for p in low.parameters())
