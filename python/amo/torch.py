"""AMO and its baselines as torch.optim.Optimizer subclasses, on libamo.

    opt = amo.torch.AMO(model.parameters(), lr=1e-3)      # or Adam, AdamW, SGD, RMSprop
    ...
    loss.backward(); opt.step(); opt.zero_grad()

PyTorch's argument names and defaults where PyTorch has the algorithm, plus
ours (keyword only): clip_norm (one global gradient norm over every group;
1.0 for AMO, off for the others), bounds=(lo, hi), state_dtype (float32 or
bfloat16 moments, stochastically rounded), seed (of that rounding), threads
and arch.

One C optimizer (optim/optim.h) runs the whole step: the global norm, the
NaN/Inf skip and the update of every tensor, in place.  It is built at the
first step, when the gradients exist, and owns the moments: state[p] holds
tensors that view its buffers (PyTorch's keys and layout), so state_dict()
and torch.save work as with torch.optim.  Between steps the binding hands
the C side the current gradient pointers (opt_set_tensors) and each
tensor's lr and weight decay (opt_set_tensor_scales), so schedulers,
zero_grad(set_to_none=True) and per-group hyperparameters work unchanged.

What differs from torch.optim, each an error naming the parameter or the
option rather than a silent difference: every parameter needs a gradient at
every step (amo keeps one step count); only lr and weight_decay may differ
between param groups; groups cannot be added after the first step; tensors
must be float32, dense, contiguous and on the CPU.
"""
import ctypes
import math
import re
import warnings
from collections import defaultdict

import torch
from torch.optim.optimizer import Optimizer, required

from . import _capi as C

__all__ = ["AMO", "Adam", "AdamW", "SGD", "RMSprop"]


def _shape(t):
    return list(t.shape)


class _Handle:
    """Owns one C optimizer; the state tensors keep it alive through their buffers."""

    def __init__(self, ptr):
        self.ptr = ptr

    def __del__(self):
        if self.ptr and C is not None and C.lib is not None:
            C.lib.opt_destroy(self.ptr)
            self.ptr = None


def _view(handle, buffer, nbytes, dtype):
    """A flat tensor over one of the C optimizer's moment buffers, keeping it alive."""
    ptr = C.lib.opt_moments(handle.ptr, buffer)
    raw = (ctypes.c_char * nbytes).from_address(ptr)
    raw._amo_handle = handle
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "non-writable buffer": ctypes arrays are writable
        return torch.frombuffer(raw, dtype=dtype)


class _AmoOptimizer(Optimizer):
    """What AMO, Adam, SGD and RMSprop share.  Subclasses set:
    _algo        C's OptAlgo
    _moments     PyTorch's names of the state buffers, in C's order (a function of the group)
    _per_group   keys that may differ between groups (the others must agree: one C config)
    _torch_only  PyTorch flags accepted for compatibility: name -> the value amo supports,
                 or None for flags that change nothing here (foreach, differentiable)
    and _fill(config, group)."""

    _per_group = ("lr", "weight_decay")
    _torch_only = {}

    def __init__(self, params, defaults, threads, arch):
        if threads is not None and (int(threads) != threads or threads < 0):
            raise ValueError(f"{self._name()}: threads {threads!r}: must be an integer >= 0 "
                             "(0: omp_get_max_threads())")
        self._threads = threads
        if arch is not None:
            C.set_arch(arch)
        C.init_from_env()
        self._handle = None
        self._shared_keys = tuple(k for k in defaults if k not in self._per_group)
        super().__init__(params, defaults)
        self._reset_binding()

    # ---- names and errors --------------------------------------------------

    @classmethod
    def _name(cls):
        return f"amo.torch.{cls.__name__}"

    def _where(self, index):
        """Parameter `index` of the flat list, named as the user wrote it."""
        for g, group in enumerate(self.param_groups):
            if index < len(group["params"]):
                p = group["params"][index]
                return f"parameter {index} of param group {g} (shape {_shape(p)})"
            index -= len(group["params"])
        return f"parameter {index}"

    def _c_error(self, what, st, err):
        msg = err.value.decode() or C.status_str(st)
        tensors = sorted({int(k) for k in re.findall(r"tensors? (\d+)", msg)} |
                         {int(k) for k in re.findall(r"tensors \d+ and (\d+)", msg)})
        names = "; ".join(f"tensor {k} is {self._where(k)}" for k in tensors)
        return ValueError(f"{self._name()}: {what}: {msg}" + (f" ({names})" if names else ""))

    # ---- parameters and groups ---------------------------------------------

    def add_param_group(self, param_group):
        if getattr(self, "_handle", None) is not None and C.lib.opt_steps(self._handle.ptr):
            raise NotImplementedError(
                f"{self._name()}: add_param_group after the first step: amo keeps one step "
                "count for all parameters (Adam's bias correction, the rounding stream); "
                "add every group before the first step")
        params = param_group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        g = len(self.param_groups)
        seen = {id(p): (gi, i) for gi, grp in enumerate(self.param_groups)
                for i, p in enumerate(grp["params"])}
        for i, p in enumerate(params):
            where = f"parameter {i} of param group {g}"
            if not isinstance(p, torch.Tensor):
                raise TypeError(f"{self._name()}: {where} is a {type(p).__name__}, not a tensor")
            self._check_param(p, where)
            if id(p) in seen:
                og, oi = seen[id(p)]
                raise ValueError(f"{self._name()}: {where} (shape {_shape(p)}) is already "
                                 f"parameter {oi} of param group {og}: a parameter may be in "
                                 "one group only")
            seen[id(p)] = (g, i)
        param_group = dict(param_group, params=params)
        for k, v in self.defaults.items():
            param_group.setdefault(k, v)
        self._check_group(param_group, g, self.param_groups[0] if self.param_groups else None)
        super().add_param_group(param_group)
        self._reset_binding()

    def _check_param(self, p, where):
        if p.device.type != "cpu":
            raise ValueError(f"{self._name()}: {where} (shape {_shape(p)}) is on "
                             f"{p.device}: amo updates CPU tensors only")
        if p.layout is not torch.strided:
            raise ValueError(f"{self._name()}: {where} is {p.layout}: amo updates dense "
                             "tensors only")
        if p.dtype is not torch.float32:
            raise TypeError(f"{self._name()}: {where} (shape {_shape(p)}) is {p.dtype}: amo "
                            "updates float32 parameters only")
        if not p.is_contiguous():
            raise ValueError(f"{self._name()}: {where} (shape {_shape(p)}, strides "
                             f"{list(p.stride())}) is not contiguous: amo updates contiguous "
                             "tensors only (call .contiguous() on the module's parameters)")

    def _check_group(self, group, g, g0):
        """Group g's hyperparameters, and those it must share with group 0 (g0)."""
        name = self._name()
        for k, ok in self._torch_only.items():
            if ok is not None and group.get(k, ok) != ok:
                raise ValueError(f"{name}: param group {g}: {k}={group[k]!r} is not supported "
                                 f"by amo (only {k}={ok!r})")
        lr, wd = group["lr"], group["weight_decay"]
        if lr is required:
            raise ValueError(f"{name}: param group {g}: lr is required")
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr >= 0):
            raise ValueError(f"{name}: param group {g}: lr {lr!r}: must be finite and >= 0")
        if not (isinstance(wd, (int, float)) and math.isfinite(wd) and wd >= 0):
            raise ValueError(f"{name}: param group {g}: weight_decay {wd!r}: must be finite "
                             "and >= 0")
        if group["state_dtype"] not in (torch.float32, torch.bfloat16):
            raise ValueError(f"{name}: param group {g}: state_dtype {group['state_dtype']}: "
                             "torch.float32 or torch.bfloat16")
        if g0 is not None:
            for k in self.defaults:
                if k not in self._per_group and group.get(k) != g0.get(k):
                    raise ValueError(
                        f"{name}: param group {g} has {k}={group.get(k)!r}, group 0 "
                        f"{g0.get(k)!r}: only {' and '.join(self._per_group)} may differ between "
                        "groups (one C optimizer, one global clip norm)")
        # The C side checks the rest (betas in [0, 1), eps >= FLT_MIN, ...):
        # an optimizer over no tensor validates the configuration alone.
        cfg = self._config(group)
        out, err = ctypes.c_void_p(), C.error_buffer()
        st = C.lib.opt_create(ctypes.byref(out), ctypes.byref(cfg), None, 0, err, len(err))
        if st != C.AMO_OK:
            raise ValueError(f"{name}: param group {g}: {err.value.decode()}")
        C.lib.opt_destroy(out)

    def _config(self, group):
        c = C.lib.opt_config_default(self._algo)
        # lr and weight decay go per tensor as scales of 1 (opt_set_tensor_scales)
        c.lr = 1.0
        c.weight_decay = 1.0
        clip = group["clip_norm"]
        c.clip = int(clip is not None)
        if clip is not None:
            c.tau = float(clip)
        lo, hi = group["bounds"] if group["bounds"] is not None else (-math.inf, math.inf)
        c.lo, c.hi = float(lo), float(hi)
        c.state = C.OPT_STATE_BF16 if group["state_dtype"] == torch.bfloat16 else C.OPT_STATE_FP32
        c.seed = int(group["seed"])
        c.threads = torch.get_num_threads() if self._threads is None else int(self._threads)
        self._fill(c, group)
        return c

    # ---- the binding: C optimizer, pointers, scales ------------------------

    def _reset_binding(self):
        self._params = [p for g in self.param_groups for p in g["params"]]
        self._ptrs = None
        self._scales = None

    def _build(self):
        """The C optimizer over every parameter, at the first step (the gradients
        exist then) or the first after load_state_dict; moments from self.state."""
        params = self._params
        groups = self.param_groups
        cfg = self._config(groups[0])
        tensors = (C.OptTensor * max(len(params), 1))()
        for i, p in enumerate(params):
            tensors[i] = C.OptTensor(p.data_ptr(), p.grad.data_ptr(), p.numel(), 0)
        out, err = ctypes.c_void_p(), C.error_buffer()
        st = C.lib.opt_create(ctypes.byref(out), ctypes.byref(cfg), tensors, len(params), err,
                              len(err))
        if st != C.AMO_OK:
            raise self._c_error("creating the optimizer", st, err)
        handle = _Handle(out.value)
        self._tensors = tensors
        self._ptrs = [x for p in params for x in (p.data_ptr(), p.grad.data_ptr())]

        # state[p]: views of the C buffers, filled from whatever state was loaded
        total = sum(p.numel() for p in params)
        dtype = groups[0]["state_dtype"]
        keys = self._moments(groups[0])
        esize = 2 if dtype == torch.bfloat16 else 4
        flats = [_view(handle, b, total * esize, dtype) if total else None
                 for b in range(len(keys))]
        steps = torch.zeros(max(len(params), 1), dtype=torch.float32)
        loaded = self._loaded_steps(params, keys)
        new_state = defaultdict(dict)
        off = 0
        for i, p in enumerate(params):
            n = p.numel()
            s = {"step": steps[i]}
            old = self.state.get(p, {})
            for b, key in enumerate(keys):
                v = flats[b][off:off + n].view_as(p) if n else torch.zeros_like(p, dtype=dtype)
                if old.get(key) is not None:
                    # what opt_load checks in a state file, checked here too
                    m = old[key]
                    if not bool(torch.isfinite(m).all()) or (
                            key in ("exp_avg_sq", "square_avg") and bool((m < 0).any())):
                        raise ValueError(f"{self._name()}: state['{key}'] of parameter {i} "
                                         "is not finite or a second moment is negative")
                    v.copy_(m.reshape(p.shape))
                s[key] = v
            new_state[p] = s
            off += n
        counts = self._loaded_counts
        skipped, clipped = counts.get("skipped", 0), counts.get("clipped", 0)
        if C.lib.opt_set_steps(handle.ptr, loaded, skipped, clipped) != C.AMO_OK:
            raise ValueError(f"{self._name()}: bad step counts {loaded}, {skipped}, {clipped}")
        steps.fill_(float(loaded))
        self._steps = steps
        self.state = new_state
        self._handle = handle
        self._scales = None
        self._shared = self._shared_values()

    def _loaded_steps(self, params, keys):
        """The one step count a loaded state must have (0 without one)."""
        counts = {}
        for i, p in enumerate(params):
            s = self.state.get(p)
            if not s:
                counts.setdefault(None, i)
                continue
            if "step" in s:
                st = s["step"]
                st = int(st.item() if isinstance(st, torch.Tensor) else st)
            else:  # torch's SGD keeps no step: its buffer means one step at least
                st = 1 if any(s.get(k) is not None for k in keys) else 0
            counts.setdefault(st, i)
        if len(counts) > 1:
            desc = ", ".join(f"{self._where(i)}: " + ("no state" if st is None else f"step {st}")
                             for st, i in counts.items())
            raise ValueError(f"{self._name()}: the loaded state has parameters at different "
                             f"steps ({desc}): amo keeps one step count for all parameters")
        st = next(iter(counts), None)
        return st or 0

    def _sync(self):
        """Checks every parameter and gradient, hands new pointers and changed
        lr / weight decay to the C optimizer.  False: no gradient at all."""
        params = self._params
        ptrs = []
        missing = None
        for i, p in enumerate(params):
            g = p.grad
            if g is None:
                missing = i if missing is None else missing
                continue
            if (g.layout is not torch.strided or g.dtype is not torch.float32 or not g.is_cpu
                    or not g.is_contiguous() or not p.is_contiguous()
                    or p.dtype is not torch.float32 or not p.is_cpu):
                self._bad(i, p, g)
            ptrs.append(p.data_ptr())
            ptrs.append(g.data_ptr())
        if missing is not None:
            if not ptrs:
                return False  # as torch.optim: nothing to do
            raise ValueError(
                f"{self._name()}: {self._where(missing)} has no gradient while others do: amo "
                "updates every parameter at every step (one step count, one global norm); "
                "leave parameters that get no gradient out of the optimizer")
        if self._handle is None:
            self._build()
        elif ptrs != self._ptrs:
            t = self._tensors
            for i, p in enumerate(params):
                t[i].param, t[i].grad = ptrs[2 * i], ptrs[2 * i + 1]
            err = C.error_buffer()
            st = C.lib.opt_set_tensors(self._handle.ptr, t, len(params), err, len(err))
            if st != C.AMO_OK:
                raise self._c_error("new parameter or gradient tensors", st, err)
            self._ptrs = ptrs
        scales = [(g["lr"], g["weight_decay"]) for g in self.param_groups]
        if scales != self._scales:
            self._push_scales(scales)
        shared = self._shared_values()
        if shared != self._shared:
            self._push_config(shared)
        return True

    def _shared_values(self):
        keys = self._shared_keys
        return [tuple(g.get(k) for k in keys) for g in self.param_groups]

    def _push_config(self, shared):
        """Hyperparameters changed between steps (OneCycleLR cycles betas or
        momentum): the C optimizer takes them, moments kept."""
        groups = self.param_groups
        for g, group in enumerate(groups):
            self._check_group(group, g, groups[0] if g else None)
        cfg, err = self._config(groups[0]), C.error_buffer()
        st = C.lib.opt_set_config(self._handle.ptr, ctypes.byref(cfg), err, len(err))
        if st != C.AMO_OK:
            raise self._c_error("new hyperparameters", st, err)
        self._shared = shared

    def _bad(self, i, p, g):
        where, name = self._where(i), self._name()
        if g.layout is not torch.strided:
            raise ValueError(f"{name}: the gradient of {where} is sparse ({g.layout}): amo "
                             "updates dense gradients only (nn.Embedding(sparse=False))")
        if not g.is_cpu:
            raise ValueError(f"{name}: the gradient of {where} is on {g.device}: amo updates "
                             "CPU tensors only")
        if g.dtype is not torch.float32:
            raise TypeError(f"{name}: the gradient of {where} is {g.dtype}, not float32")
        if not g.is_contiguous():
            raise ValueError(f"{name}: the gradient of {where} (strides {list(g.stride())}) is "
                             "not contiguous: amo reads contiguous gradients only")
        self._check_param(p, where)

    def _push_scales(self, scales):
        n = len(self._params)
        lr, wd = (ctypes.c_float * max(n, 1))(), (ctypes.c_float * max(n, 1))()
        i = 0
        for (glr, gwd), group in zip(scales, self.param_groups):
            for _ in group["params"]:
                lr[i], wd[i] = glr, gwd
                i += 1
        err = C.error_buffer()
        st = C.lib.opt_set_tensor_scales(self._handle.ptr, lr, wd, err, len(err))
        if st != C.AMO_OK:
            raise self._c_error("learning rates and weight decays", st, err)
        self._scales = scales

    # ---- torch.optim.Optimizer ----------------------------------------------

    @torch.no_grad()
    def step(self, closure=None):
        """One step over every parameter.  A NaN or Inf in any gradient skips it
        (parameters and state unchanged, skipped_steps + 1, a RuntimeWarning)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if not self._sync():
            return loss
        info = C.OptStepInfo()
        st = C.lib.opt_step(self._handle.ptr, ctypes.byref(info))
        if st != C.AMO_OK:
            raise RuntimeError(f"{self._name()}: step: {C.status_str(st)}")
        self._last = info
        if info.skipped:
            warnings.warn(f"{self._name()}: step skipped: a gradient holds NaN or Inf (norm "
                          f"{info.grad_norm}); parameters and state unchanged (see "
                          "skipped_steps)", RuntimeWarning, stacklevel=2)
        else:
            self._steps.fill_(float(info.step))
        return loss

    def state_dict(self):
        sd = super().state_dict()
        sd["amo"] = {"skipped": self.skipped_steps, "clipped": self.clipped_steps}
        return sd

    def load_state_dict(self, state_dict):
        """PyTorch's layout (torch.optim's own state dicts load too); the moments go
        into the C optimizer at the next step, which continues bit for bit."""
        counts = dict(state_dict.get("amo", {}))
        super().load_state_dict(state_dict)
        for g, group in enumerate(self.param_groups):
            for k, v in self.defaults.items():
                group.setdefault(k, v)
        for g, group in enumerate(self.param_groups):
            self._check_group(group, g, self.param_groups[0] if g else None)
        self._handle = None  # rebuilt at the next step from self.state
        self._loaded_counts = counts
        self._reset_binding()

    def __getstate__(self):
        # copy.deepcopy and pickle: the state tensors go as tensors (torch's
        # __getstate__), the C optimizer is rebuilt from them at the next step
        d = super().__getstate__()
        d.update(_threads=self._threads, _shared_keys=self._shared_keys,
                 _loaded_counts={"skipped": self.skipped_steps, "clipped": self.clipped_steps})
        return d

    def __setstate__(self, state):
        super().__setstate__(state)
        self._handle = None
        self._reset_binding()

    # ---- what C counts ------------------------------------------------------

    @property
    def skipped_steps(self):
        """Steps skipped because a gradient held NaN or Inf."""
        if self._handle is None:
            return int(self._loaded_counts.get("skipped", 0))
        return int(C.lib.opt_skipped(self._handle.ptr))

    @property
    def clipped_steps(self):
        """Steps whose gradients were scaled down by clip_norm."""
        if self._handle is None:
            return int(self._loaded_counts.get("clipped", 0))
        return int(C.lib.opt_clipped(self._handle.ptr))

    @property
    def last_step(self):
        """The last step: grad_norm (global, before clipping), grad_scale, clipped,
        skipped, step, and the kernel level that ran; None before the first."""
        i = getattr(self, "_last", None)
        if i is None:
            return None
        return {"grad_norm": i.grad_norm, "grad_scale": i.grad_scale, "clipped": bool(i.clipped),
                "skipped": bool(i.skipped), "step": int(i.step), "level": i.level.decode()}

    @property
    def threads(self):
        """OpenMP threads of the step (default: torch.get_num_threads() at the first step)."""
        if self._handle is not None:
            return int(C.lib.opt_threads(self._handle.ptr))
        return torch.get_num_threads() if self._threads is None else self._threads

    _loaded_counts = {}


def _ours(clip_norm, bounds, state_dtype, seed):
    return dict(clip_norm=clip_norm, bounds=None if bounds is None else tuple(bounds),
                state_dtype=state_dtype, seed=seed)


class AMO(_AmoOptimizer):
    """AMO (the paper, section 3, Algorithm 1): Adam without bias correction,
    global-norm clipping at 1.0 by default.  betas = (beta, gamma)."""

    _algo = C.OPT_AMO

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *,
                 clip_norm=1.0, bounds=None, bias_correction=False,
                 decoupled_weight_decay=False, state_dtype=torch.float32, seed=0,
                 threads=None, arch=None):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        bias_correction=bias_correction,
                        decoupled_weight_decay=decoupled_weight_decay,
                        **_ours(clip_norm, bounds, state_dtype, seed))
        super().__init__(params, defaults, threads, arch)

    @staticmethod
    def _moments(group):
        return ("exp_avg", "exp_avg_sq")

    def _fill(self, c, g):
        c.beta, c.gamma = (float(b) for b in g["betas"])
        c.eps = float(g["eps"])
        c.bias_correction = int(bool(g.get("bias_correction", False)))
        c.decay_mode = C.OPT_DECAY_DECOUPLED if g["decoupled_weight_decay"] else C.OPT_DECAY_L2


class Adam(AMO):
    """torch.optim.Adam (decoupled_weight_decay=True: AdamW)."""

    _algo = C.OPT_ADAM
    _torch_only = {"amsgrad": False, "maximize": False, "capturable": False,
                   "foreach": None, "differentiable": None, "fused": None}

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False,
                 clip_norm=None, bounds=None, state_dtype=torch.float32, seed=0,
                 threads=None, arch=None):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, foreach=foreach, maximize=maximize,
                        capturable=capturable, differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay,
                        **_ours(clip_norm, bounds, state_dtype, seed))
        _AmoOptimizer.__init__(self, params, defaults, threads, arch)


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay (default 1e-2)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, **kwargs):
        kwargs["decoupled_weight_decay"] = True
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, **kwargs)


class SGD(_AmoOptimizer):
    """torch.optim.SGD: momentum, dampening, Nesterov, coupled weight decay."""

    _algo = C.OPT_SGD
    _torch_only = {"maximize": False, "foreach": None, "differentiable": None}

    def __init__(self, params, lr=required, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 clip_norm=None, bounds=None, seed=0, threads=None, arch=None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable,
                        **_ours(clip_norm, bounds, torch.float32, seed))
        super().__init__(params, defaults, threads, arch)

    @staticmethod
    def _moments(group):
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _fill(self, c, g):
        c.momentum, c.dampening = float(g["momentum"]), float(g["dampening"])
        c.nesterov = int(bool(g["nesterov"]))


class RMSprop(_AmoOptimizer):
    """torch.optim.RMSprop (not centered): alpha, eps, momentum, coupled weight decay."""

    _algo = C.OPT_RMSPROP
    _torch_only = {"centered": False, "maximize": False, "foreach": None,
                   "differentiable": None}

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, foreach=None, maximize=False, differentiable=False, *,
                 clip_norm=None, bounds=None, seed=0, threads=None, arch=None):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, foreach=foreach,
                        maximize=maximize, differentiable=differentiable,
                        **_ours(clip_norm, bounds, torch.float32, seed))
        super().__init__(params, defaults, threads, arch)

    @staticmethod
    def _moments(group):
        return ("square_avg", "momentum_buffer") if group["momentum"] > 0 else ("square_avg",)

    def _fill(self, c, g):
        c.alpha, c.eps, c.momentum = float(g["alpha"]), float(g["eps"]), float(g["momentum"])
