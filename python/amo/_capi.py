"""libamo's C API through ctypes: no C extension, nothing compiled at install.

The structs of optim/optim.h are mirrored field by field below; the python
test suite compares every offset with the compiler's (python/layout.c), so
a field added on the C side fails the suite instead of shifting the rest.

Where the library is found, first that exists wins:
  1. AMO_LIBRARY, a path (the build tree's library in `meson test`; an
     explicit choice anywhere else, and then the only candidate);
  2. beside the installed package: _paths.py, written by `meson install`,
     names the library relative to the install prefix, so a --destdir or a
     moved prefix still works; then the same path under the configured prefix;
  3. the dynamic loader's own search for the soname (LD_LIBRARY_PATH, ldconfig).
"""
import ctypes
import os
from ctypes import (POINTER, Structure, byref, c_char_p, c_double, c_float, c_int, c_size_t,
                    c_uint, c_uint64, c_void_p)

SONAME = "libamo.so.0"

# enum AmoStatus (common/status.h)
AMO_OK, AMO_EINVAL, AMO_EOVERLAP, AMO_EUNSUPPORTED = 0, 1, 2, 3
# enum OptAlgo, OptDecay, OptStateType (optim/optim.h)
OPT_AMO, OPT_ADAM, OPT_SGD, OPT_RMSPROP = 0, 1, 2, 3
OPT_DECAY_L2, OPT_DECAY_DECOUPLED = 0, 1
OPT_STATE_FP32, OPT_STATE_BF16 = 0, 1


class OptConfig(Structure):
    _fields_ = [
        ("algo", c_int), ("lr", c_float), ("beta", c_float), ("gamma", c_float),
        ("eps", c_float), ("bias_correction", c_int), ("momentum", c_float),
        ("dampening", c_float), ("nesterov", c_int), ("alpha", c_float), ("clip", c_int),
        ("tau", c_float), ("lo", c_float), ("hi", c_float), ("weight_decay", c_float),
        ("decay_mode", c_int), ("schedule", c_int), ("warmup", c_uint64),
        ("step_size", c_uint64), ("step_gamma", c_float), ("total_steps", c_uint64),
        ("min_lr", c_float), ("state", c_int), ("seed", c_uint64), ("threads", c_int),
    ]


class OptTensor(Structure):
    _fields_ = [("param", c_void_p), ("grad", c_void_p), ("n", c_size_t), ("no_decay", c_int)]


class OptStepInfo(Structure):
    _fields_ = [
        ("grad_norm", c_double), ("grad_scale", c_float), ("lr", c_float),
        ("clipped", c_int), ("skipped", c_int), ("step", c_uint64), ("level", c_char_p),
    ]


STRUCTS = {"OptConfig": OptConfig, "OptTensor": OptTensor, "OptStepInfo": OptStepInfo}

# name: (restype, argtypes)
_PROTOTYPES = {
    "amo_status_str": (c_char_p, [c_int]),
    "amo_version": (c_char_p, []),
    "amo_build_commit": (c_char_p, []),
    "kn_cpu_init_from_env": (c_int, []),
    "kn_cpu_set_arch": (c_int, [c_char_p]),
    "kn_cpu_detected": (c_uint, []),
    "kn_cpu_flags": (c_uint, []),
    "kn_cpu_level_name": (c_char_p, [c_uint]),
    "kn_kernel_name": (c_char_p, [c_int]),
    "kn_kernel_level": (c_char_p, [c_int]),
    "opt_config_default": (OptConfig, [c_int]),
    "opt_create": (c_int, [POINTER(c_void_p), POINTER(OptConfig), POINTER(OptTensor), c_int,
                           c_char_p, c_size_t]),
    "opt_destroy": (None, [c_void_p]),
    "opt_step": (c_int, [c_void_p, POINTER(OptStepInfo)]),
    "opt_set_tensors": (c_int, [c_void_p, POINTER(OptTensor), c_int, c_char_p, c_size_t]),
    "opt_set_tensor_scales": (c_int, [c_void_p, POINTER(c_float), POINTER(c_float), c_char_p,
                                      c_size_t]),
    "opt_set_config": (c_int, [c_void_p, POINTER(OptConfig), c_char_p, c_size_t]),
    "opt_moments": (c_void_p, [c_void_p, c_int]),
    "opt_set_steps": (c_int, [c_void_p, c_uint64, c_uint64, c_uint64]),
    "opt_steps": (c_uint64, [c_void_p]),
    "opt_skipped": (c_uint64, [c_void_p]),
    "opt_clipped": (c_uint64, [c_void_p]),
    "opt_threads": (c_int, [c_void_p]),
}

KN_KERNELS = 5  # KN_K_COUNT (kernels/update.h)


def _candidates():
    env = os.environ.get("AMO_LIBRARY")
    if env:
        return [env]
    found = []
    try:
        from . import _paths
    except ImportError:  # the source tree: no install paths
        _paths = None
    if _paths is not None:
        # site-packages/amo/_paths.py lies at PREFIX/PYTHON_DIR/amo: go up
        # as many levels as PYTHON_DIR has, whatever the prefix is now.
        site = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        prefix = site
        for _ in _paths.PYTHON_DIR.strip("/").split("/"):
            prefix = os.path.dirname(prefix)
        found.append(os.path.join(prefix, _paths.LIBDIR, SONAME))
        found.append(os.path.join(_paths.PREFIX, _paths.LIBDIR, SONAME))
    found.append(SONAME)
    return found


def _load():
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(f"{path} (no such file)")
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({e})")
            continue
        missing = [name for name in _PROTOTYPES if not hasattr(lib, name)]
        if missing:
            tried.append(f"{path} (an older libamo: no {', '.join(missing)})")
            continue
        for name, (res, args) in _PROTOTYPES.items():
            f = getattr(lib, name)
            f.restype, f.argtypes = res, args
        return lib, path
    raise ImportError("amo: cannot load libamo; tried " + "; ".join(tried) +
                      ". Install it (meson install) or set AMO_LIBRARY to its path.")


lib, library_path = _load()


def status_str(st):
    return lib.amo_status_str(st).decode()


def init_from_env():
    """Applies AMO_ARCH once; a bad value is an error here, not a silent fallback."""
    st = lib.kn_cpu_init_from_env()
    if st != AMO_OK:
        raise RuntimeError(f"amo: AMO_ARCH={os.environ.get('AMO_ARCH')!r}: {status_str(st)}")


def set_arch(name):
    st = lib.kn_cpu_set_arch(str(name).encode())
    if st == AMO_EINVAL:
        raise ValueError(f"amo: arch {name!r}: unknown level "
                         "(auto, scalar, avx2, avx512, neon)")
    if st != AMO_OK:
        raise RuntimeError(f"amo: arch {name!r}: {status_str(st)} "
                           f"(this CPU has {lib.kn_cpu_level_name(lib.kn_cpu_detected()).decode()})")


def error_buffer():
    return ctypes.create_string_buffer(512)


__all__ = ["lib", "library_path", "OptConfig", "OptTensor", "OptStepInfo", "byref"]
