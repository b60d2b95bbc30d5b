"""Bad input: Python exceptions that name the parameter or the option."""
import math
import warnings

import pytest
import torch

import amo

from conftest import batches, params, train, twins


def P(*shape, **kw):
    return torch.nn.Parameter(torch.randn(*shape, **kw))


def test_parameter_not_on_the_cpu():
    """CUDA tensors take the same path as this one (no GPU here): any device
    but the CPU is refused at construction."""
    p = torch.nn.Parameter(torch.empty(3, 4, device="meta"))
    with pytest.raises(ValueError, match=r"parameter 0 of param group 0 \(shape \[3, 4\]\) "
                                         r"is on meta: amo updates CPU tensors only"):
        amo.torch.Adam([p])


def test_dtypes_other_than_float32():
    for dtype in (torch.float64, torch.float16, torch.bfloat16):
        with pytest.raises(TypeError, match=rf"parameter 1 of param group 0 \(shape \[5\]\) is "
                                            rf"{dtype}: amo updates float32 parameters only"):
            amo.torch.AMO([P(2), P(5, dtype=dtype)])


def test_non_contiguous_parameter():
    base = torch.randn(4, 6)
    p = torch.nn.Parameter(base.t())  # a transposed view: not contiguous
    with pytest.raises(ValueError, match=r"parameter 0 of param group 0 \(shape \[6, 4\], "
                                         r"strides \[1, 6\]\) is not contiguous"):
        amo.torch.SGD([p], lr=0.1)


def test_non_contiguous_gradient():
    p = P(4, 6)
    o = amo.torch.AMO([P(3), p])
    o.param_groups[0]["params"][0].grad = torch.ones(3)
    p.grad = torch.ones(6, 4).t()
    with pytest.raises(ValueError, match=r"the gradient of parameter 1 of param group 0 "
                                         r"\(shape \[4, 6\]\) \(strides \[1, 4\]\) is not "
                                         r"contiguous"):
        o.step()


def test_sparse_gradient():
    emb = torch.nn.Embedding(10, 4, sparse=True)
    o = amo.torch.Adam(emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(ValueError, match=r"the gradient of parameter 0 of param group 0 "
                                         r"\(shape \[10, 4\]\) is sparse"):
        o.step()


def test_parameter_in_two_groups():
    a, b = P(3), P(4)
    with pytest.raises(ValueError, match=r"parameter 1 of param group 1 \(shape \[3\]\) is "
                                         r"already parameter 0 of param group 0"):
        amo.torch.Adam([{"params": [a]}, {"params": [b, a]}])


def test_overlapping_parameters():
    """Two parameters over one storage (tied by views, not by identity)."""
    base = torch.zeros(10)
    a, b = torch.nn.Parameter(base[:6]), torch.nn.Parameter(base[4:])
    o = amo.torch.AMO([a, b])
    a.grad, b.grad = torch.ones(6), torch.ones(6)
    with pytest.raises(ValueError, match=r"tensors 0 and 1: parameters overlap \(tensor 0 is "
                                         r"parameter 0 of param group 0 \(shape \[6\]\); tensor "
                                         r"1 is parameter 1"):
        o.step()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_gradient_skips_the_step(bad):
    a, _ = twins()
    o = amo.torch.AMO(a.parameters())
    data = batches(3)
    train(a, o, data[:1])
    before = params(a)
    state = {k: v.clone() for k, v in o.state[next(a.parameters())].items()}
    o.zero_grad()
    torch.nn.functional.cross_entropy(a(data[1][0]), data[1][1]).backward()
    next(a.parameters()).grad[3, 5] = bad
    with pytest.warns(RuntimeWarning, match="step skipped: a gradient holds NaN or Inf"):
        o.step()
    assert o.skipped_steps == 1 and o.last_step["skipped"]
    assert math.isnan(o.last_step["grad_norm"]) or math.isinf(o.last_step["grad_norm"])
    assert all(torch.equal(x, y) for x, y in zip(before, a.parameters()))
    s = o.state[next(a.parameters())]
    assert all(torch.equal(state[k], s[k]) for k in state)
    assert o.state_dict()["amo"]["skipped"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(a, o, data[2:])  # goes on: step 2
    assert o.last_step["step"] == 2 and o.skipped_steps == 1


def test_some_gradients_missing():
    a, b = P(3), P(4)
    o = amo.torch.AMO([a, b])
    a.grad = torch.ones(3)
    with pytest.raises(ValueError, match=r"parameter 1 of param group 0 \(shape \[4\]\) has no "
                                         r"gradient while others do"):
        o.step()


def test_hyperparameters_checked_by_the_c_side():
    with pytest.raises(ValueError, match=r"param group 0: beta 1: must be in \[0, 1\)"):
        amo.torch.Adam([P(3)], betas=(1.0, 0.999))
    with pytest.raises(ValueError, match=r"eps 0: must be finite and >= 1.17549e-38"):
        amo.torch.AMO([P(3)], eps=0.0)
    with pytest.raises(ValueError, match=r"nesterov needs momentum > 0 and dampening 0"):
        amo.torch.SGD([P(3)], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"bounds \[1, -1\]: need lo <= hi"):
        amo.torch.AMO([P(3)], bounds=(1, -1))
    with pytest.raises(ValueError, match=r"tau -1: must be finite and > 0"):
        amo.torch.AMO([P(3)], clip_norm=-1.0)
    with pytest.raises(ValueError, match=r"state_dtype torch.float16"):
        amo.torch.AMO([P(3)], state_dtype=torch.float16)


def test_python_side_checks():
    with pytest.raises(ValueError, match=r"param group 0: lr is required"):
        amo.torch.SGD([P(3)])
    with pytest.raises(ValueError, match=r"param group 1: lr -0.1: must be finite and >= 0"):
        amo.torch.Adam([{"params": [P(3)]}, {"params": [P(2)], "lr": -0.1}])
    with pytest.raises(ValueError, match=r"weight_decay nan"):
        amo.torch.Adam([P(3)], weight_decay=math.nan)
    with pytest.raises(ValueError, match=r"param group 1 has betas=\(0.8, 0.99\), group 0 "
                                         r"\(0.9, 0.999\): only lr and weight_decay may differ"):
        amo.torch.Adam([{"params": [P(3)]}, {"params": [P(2)], "betas": (0.8, 0.99)}])
    with pytest.raises(ValueError, match=r"amsgrad=True is not supported by amo"):
        amo.torch.Adam([P(3)], amsgrad=True)
    with pytest.raises(ValueError, match=r"centered=True is not supported"):
        amo.torch.RMSprop([P(3)], centered=True)
    with pytest.raises(ValueError, match=r"maximize=True is not supported"):
        amo.torch.SGD([P(3)], lr=0.1, maximize=True)
    with pytest.raises(ValueError, match=r"threads -1: must be an integer >= 0"):
        amo.torch.AMO([P(3)], threads=-1)
    with pytest.raises(ValueError, match=r"arch 'sse9': unknown level"):
        amo.torch.AMO([P(3)], arch="sse9")


def test_loaded_state_at_different_steps():
    a, b = P(3), P(4)
    o = torch.optim.Adam([a, b])
    a.grad, b.grad = torch.ones(3), torch.ones(4)
    o.step()
    b.grad = None
    o.step()  # torch steps a alone: a at step 2, b at step 1
    ours = amo.torch.Adam([a, b])
    ours.load_state_dict(o.state_dict())
    b.grad = torch.ones(4)
    with pytest.raises(ValueError, match=r"parameters at different steps \(parameter 0 of param "
                                         r"group 0 \(shape \[3\]\): step 2, parameter 1 of param "
                                         r"group 0 \(shape \[4\]\): step 1\)"):
        ours.step()


def test_sgd_momentum_cannot_start_mid_run():
    """momentum 0 keeps no buffer: a scheduler cannot turn it on later."""
    p = P(3)
    o = amo.torch.SGD([p], lr=0.1)
    p.grad = torch.ones(3)
    o.step()
    o.param_groups[0]["momentum"] = 0.9
    with pytest.raises(ValueError, match=r"new hyperparameters: sgd with 1 moment buffers "
                                         r"\(fp32\): the optimizer has sgd with 0"):
        o.step()
