"""state_dict, schedulers, closures and gradient tensors that change."""
import copy
import io

import pytest
import torch

import amo

from conftest import batches, params, rel_diff, train, twins

OPTIMIZERS = {
    "amo": lambda p: amo.torch.AMO(p, weight_decay=1e-3),
    "amo-bf16": lambda p: amo.torch.AMO(p, state_dtype=torch.bfloat16, seed=7),
    "adam": lambda p: amo.torch.Adam(p, lr=1e-3),
    "adamw": lambda p: amo.torch.AdamW(p, lr=1e-3),
    "sgd": lambda p: amo.torch.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    "sgd-plain": lambda p: amo.torch.SGD(p, lr=0.05),
    "rmsprop": lambda p: amo.torch.RMSprop(p, lr=1e-3, momentum=0.5),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_dict_round_trip_continues_bitwise(name):
    """20 steps, torch.save, a fresh model and optimizer, torch.load,
    load_state_dict, 20 more steps: bit for bit the run that never stopped."""
    make = OPTIMIZERS[name]
    data = batches(40)
    a, _ = twins()
    oa = make(a.parameters())
    train(a, oa, data)

    b, _ = twins()
    ob = make(b.parameters())
    train(b, ob, data[:20])
    buf = io.BytesIO()
    torch.save({"model": b.state_dict(), "opt": ob.state_dict()}, buf)
    sd = ob.state_dict()
    keys = {k for s in sd["state"].values() for k in s}
    want = {"amo": {"step", "exp_avg", "exp_avg_sq"}, "amo-bf16": {"step", "exp_avg", "exp_avg_sq"},
            "adam": {"step", "exp_avg", "exp_avg_sq"}, "adamw": {"step", "exp_avg", "exp_avg_sq"},
            "sgd": {"step", "momentum_buffer"}, "sgd-plain": {"step"},
            "rmsprop": {"step", "square_avg", "momentum_buffer"}}[name]
    assert keys == want
    assert all(float(s["step"]) == 20 for s in sd["state"].values())
    del ob, b

    c, _ = twins(seed=9)  # other weights: the load must replace them
    oc = make(c.parameters())
    buf.seek(0)
    saved = torch.load(buf)
    c.load_state_dict(saved["model"])
    oc.load_state_dict(saved["opt"])
    train(c, oc, data[20:])
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters()))
    assert oc.last_step["step"] == 40


def test_state_dict_layout_is_pytorchs():
    """Moments as tensors of the parameter's shape under state[p]; torch's own
    Adam loads ours and ours loads torch's, and both continue alike."""
    a, b = twins()
    start = params(b)
    data = batches(60)
    oa = amo.torch.Adam(a.parameters(), lr=1e-3)
    ob = torch.optim.Adam(b.parameters(), lr=1e-3)
    train(a, oa, data[:30])
    train(b, ob, data[:30])
    for p in a.parameters():
        s = oa.state[p]
        assert s["exp_avg"].shape == p.shape and s["exp_avg"].dtype is torch.float32
    # swap: torch continues from our state, we continue from torch's
    oa2 = torch.optim.Adam(a.parameters(), lr=1e-3)
    oa2.load_state_dict(copy.deepcopy(oa.state_dict()))
    ob2 = amo.torch.Adam(b.parameters(), lr=1e-3)
    ob2.load_state_dict(ob.state_dict())
    train(a, oa2, data[30:])
    train(b, ob2, data[30:])
    assert rel_diff(a.parameters(), b.parameters(), start) <= 1e-4


@pytest.mark.parametrize("sched", ["step", "cosine", "lambda", "onecycle"])
def test_schedulers_unchanged(sched):
    """torch.optim.lr_scheduler drives our groups' lr as it drives torch's."""
    def make(cls, m):
        o = cls([{"params": m[0].parameters(), "lr": 2e-3}, {"params": m[2:].parameters()}],
                lr=1e-3)
        s = {"step": lambda: torch.optim.lr_scheduler.StepLR(o, 10, gamma=0.5),
             "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(o, 50),
             "lambda": lambda: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 1 / (1 + e)),
             "onecycle": lambda: torch.optim.lr_scheduler.OneCycleLR(
                 o, max_lr=[4e-3, 2e-3], total_steps=60)}[sched]()
        return o, s
    a, b = twins()
    start = params(b)
    data = batches(60)
    oa, sa = make(amo.torch.Adam, a)
    ob, sb = make(torch.optim.Adam, b)
    train(a, oa, data, sched=sa)
    train(b, ob, data, sched=sb)
    assert [g["lr"] for g in oa.param_groups] == [g["lr"] for g in ob.param_groups]
    assert rel_diff(a.parameters(), b.parameters(), start) <= 1e-4


def test_closure():
    """step(closure) evaluates it with gradients on and returns its loss."""
    a, b = twins()
    data = batches(20)
    la = train(a, amo.torch.AMO(a.parameters()), data, closure=True)
    lb = train(b, amo.torch.AMO(b.parameters()), data)
    assert la == lb
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_replaced_gradient_tensors():
    """Gradients zeroed in place, set to None and reallocated by autograd, or
    assigned by hand: the same steps bit for bit."""
    data = batches(20)
    runs = []
    for mode in ("in-place", "none", "assigned"):
        m, _ = twins()
        o = amo.torch.AMO(m.parameters())
        for x, y in data:
            o.zero_grad(set_to_none=mode != "in-place")
            torch.nn.functional.cross_entropy(m(x), y).backward()
            if mode == "assigned":
                for p in m.parameters():
                    p.grad = p.grad.clone() * 1.0
            o.step()
        runs.append(params(m))
    for other in runs[1:]:
        assert all(torch.equal(x, y) for x, y in zip(runs[0], other))


def test_replaced_parameter_data():
    """p.data = ... between steps (a model loaded in place of another) moves
    the C optimizer to the new memory."""
    a, _ = twins()
    o = amo.torch.AMO(a.parameters())
    data = batches(4)
    train(a, o, data[:2])
    for p in a.parameters():
        p.data = p.data.clone()
    before = params(a)
    train(a, o, data[2:])
    assert all(not torch.equal(x, y) for x, y in zip(before, a.parameters()))


def test_add_param_group():
    """Before the first step a group may be added; after it, an error saying why."""
    a, _ = twins()
    o = amo.torch.Adam(a[0].parameters(), lr=1e-3)
    o.add_param_group({"params": a[2].parameters(), "lr": 1e-4})
    o.add_param_group({"params": a[4].parameters()})
    train(a, o, batches(2))
    with pytest.raises(NotImplementedError, match="add_param_group after the first step"):
        o.add_param_group({"params": [torch.nn.Parameter(torch.zeros(3))]})


def test_no_gradient_at_all_is_a_no_op():
    a, _ = twins()
    before = params(a)
    o = amo.torch.AMO(a.parameters())
    assert o.step() is None
    assert all(torch.equal(x, y) for x, y in zip(before, a.parameters()))
    assert o.state_dict()["state"] == {}


def test_deepcopy_and_pickle():
    """A copied optimizer (copy.deepcopy, pickle) owns its own C optimizer,
    built from the copied state: both continue alike, bit for bit."""
    import pickle
    data = batches(20)
    a, _ = twins()
    oa = amo.torch.AMO(a.parameters(), threads=1)
    train(a, oa, data[:10])
    b, ob = copy.deepcopy((a, oa))  # one memo: ob's parameters are b's
    train(a, oa, data[10:])
    train(b, ob, data[10:])
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert ob.threads == 1 and ob.last_step["step"] == 20
    assert pickle.loads(pickle.dumps(oa)).state_dict()["amo"] == oa.state_dict()["amo"]
