"""Shared helpers of the amo python suite (meson test --suite python).

The suite runs on the build tree's libamo (AMO_LIBRARY, set by meson) and
this source tree's package (PYTHONPATH)."""
import copy

import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def mlp(seed=0, widths=(32, 64, 64, 10)):
    """A small real model: Linear/ReLU layers, biases included."""
    g = torch.Generator().manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        lin = torch.nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=g) / a ** 0.5)
            lin.bias.copy_(0.1 * torch.randn(b, generator=g))
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def batches(n, seed=1, dim=32, classes=10, size=64):
    """n fixed (input, label) batches of a learnable task."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, classes, generator=g)
    out = []
    for _ in range(n):
        x = torch.randn(size, dim, generator=g)
        out.append((x, (x @ w).argmax(1)))
    return out


def train(model, opt, data, closure=False, sched=None, set_to_none=True):
    """Steps opt over data; returns the losses."""
    losses = []
    for x, y in data:
        def loss_fn():
            opt.zero_grad(set_to_none=set_to_none)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss
        if closure:
            loss = opt.step(loss_fn)
        else:
            loss = loss_fn()
            opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.item())
    return losses


def twins(seed=0, **kw):
    m = mlp(seed, **kw)
    return m, copy.deepcopy(m)


def rel_diff(ours, ref, start):
    """max over tensors of max|ours - ref| / max|ref - start|: the difference
    relative to how far the reference moved each tensor."""
    worst = 0.0
    for a, b, s in zip(ours, ref, start):
        moved = (b - s).abs().max().item()
        d = (a - b).abs().max().item() / max(moved, 1e-30)
        if not d <= worst:
            worst = d
    return worst


def params(model):
    return [p.detach().clone() for p in model.parameters()]


def same_grads_step(ours, opt_ours, ref, opt_ref, x, y):
    """One step of both optimizers on the gradients of ref's loss: what they
    do differently alone, without two trajectories drifting apart."""
    opt_ref.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(ref(x), y).backward()
    for pa, pb in zip(ours.parameters(), ref.parameters()):
        pa.grad = pb.grad.clone()
    opt_ours.step()
    opt_ref.step()
