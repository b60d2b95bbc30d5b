"""amo.torch against torch.optim on the same model and data.

Each optimizer trains its own copy of a small MLP (same initial weights,
same batches) for 150 steps; the parameters must agree to BOUND relative to
how far torch moved each tensor (conftest.rel_diff).  The two differ only in
fp32 rounding (torch: one op per pass; amo: one fused pass, AVX-512 square
root and reciprocal estimates with a Newton step each): measured 0 to 2e-6,
1.7e-5 for AdamW (theta * (1 - lr wd) against theta - lr wd theta).  1e-4 is
the bound of the C oracle tests (tests/test_optim.c), far below what a wrong
formula gives (a missing bias correction, dampening or Nesterov term moves
parameters by 1e-1 or more of their displacement)."""
import copy

import pytest
import torch

import amo

from conftest import batches, params, rel_diff, same_grads_step, train, twins

BOUND = 1e-4
STEPS = 150

CASES = {
    "adam": (amo.torch.Adam, torch.optim.Adam, dict(lr=1e-3)),
    "adam-l2": (amo.torch.Adam, torch.optim.Adam, dict(lr=1e-3, weight_decay=1e-2,
                                                       betas=(0.8, 0.99), eps=1e-7)),
    "adamw": (amo.torch.AdamW, torch.optim.AdamW, dict(lr=1e-3)),
    "adamw-0.1": (amo.torch.AdamW, torch.optim.AdamW, dict(lr=3e-3, weight_decay=0.1)),
    "sgd": (amo.torch.SGD, torch.optim.SGD, dict(lr=0.05)),
    "sgd-momentum": (amo.torch.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9)),
    "sgd-dampening-wd": (amo.torch.SGD, torch.optim.SGD,
                         dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=1e-3)),
    "sgd-nesterov-wd": (amo.torch.SGD, torch.optim.SGD,
                        dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    "rmsprop": (amo.torch.RMSprop, torch.optim.RMSprop, dict(lr=1e-3)),
    "rmsprop-momentum-wd": (amo.torch.RMSprop, torch.optim.RMSprop,
                            dict(lr=1e-3, alpha=0.9, momentum=0.9, weight_decay=1e-3)),
}


@pytest.mark.parametrize("case", CASES)
def test_mlp_against_torch(case):
    ours, ref, kw = CASES[case]
    a, b = twins()
    start = params(b)
    data = batches(STEPS)
    la = train(a, ours(a.parameters(), **kw), data)
    lb = train(b, ref(b.parameters(), **kw), data)
    assert la[-1] < 0.8 * la[0] and lb[-1] < 0.8 * lb[0]  # both train
    d = rel_diff(a.parameters(), b.parameters(), start)
    print(f"{case}: max relative difference {d:.2e} after {STEPS} steps")
    assert d <= BOUND


@pytest.mark.parametrize("ours, ref", [(amo.torch.Adam, torch.optim.Adam),
                                       (amo.torch.AdamW, torch.optim.AdamW),
                                       (amo.torch.SGD, torch.optim.SGD)])
def test_param_groups_own_lr_and_weight_decay(ours, ref):
    """Two groups with their own lr and weight decay, a third with the defaults,
    fed the same gradients (torch's copy's): what is checked is each group's
    hyperparameters, not how two trajectories drift (at the scalar level
    AdamW's drift to 8e-4 over 150 independent steps)."""
    a, b = twins()
    start = params(b)

    def groups(m):
        layers = [m[0], m[2], m[4]]
        return [{"params": layers[0].parameters(), "lr": 3e-3, "weight_decay": 0.05},
                {"params": layers[1].parameters(), "lr": 1e-3 if ours is not amo.torch.SGD
                 else 0.02, "weight_decay": 0.0},
                {"params": layers[2].parameters()}]
    kw = dict(lr=1e-3 if ours is not amo.torch.SGD else 0.05, momentum=0.9) \
        if ours is amo.torch.SGD else dict(lr=1e-3)
    oa, ob = ours(groups(a), **kw), ref(groups(b), **kw)
    for x, y in batches(STEPS):
        same_grads_step(a, oa, b, ob, x, y)
    assert rel_diff(a.parameters(), b.parameters(), start) <= BOUND


def test_resnet18_against_torch_adam():
    """torchvision's ResNet-18 (62 tensors, 11.7M parameters) at 8x8, 100
    Adam steps.  Both optimizers are fed the same gradients, computed on
    torch's copy: with BatchNorm over 4 images, independent trajectories
    amplify a 1e-7 rounding difference to O(1) within 100 steps."""
    torchvision = pytest.importorskip("torchvision")
    torch.set_num_threads(2)
    b = torchvision.models.resnet18(num_classes=10)
    a = copy.deepcopy(b)
    start = params(b)
    oa = amo.torch.Adam(a.parameters(), lr=1e-3, weight_decay=1e-4)
    ob = torch.optim.Adam(b.parameters(), lr=1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(3)
    for _ in range(100):
        x, y = torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 10, (4,), generator=g)
        same_grads_step(a, oa, b, ob, x, y)
    d = rel_diff(a.parameters(), b.parameters(), start)
    print(f"resnet18 adam: max relative difference {d:.2e}")
    assert d <= BOUND
