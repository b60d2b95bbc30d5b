"""amo: the AMO optimizer and its baselines (Adam, AdamW, SGD, RMSprop) on
libamo's SIMD update kernels, chosen at run time, for PyTorch.

    import amo
    amo.cpu_info()                 # which kernel level runs
    amo.library_info()             # libamo's path, version and commit
    opt = amo.torch.AMO(model.parameters(), lr=1e-3)

libamo is loaded through ctypes: nothing is compiled at install time and no
torch headers are needed.  `amo.torch` is imported on first use, so
`import amo` works without torch.
"""
import importlib

from . import _capi

__version__ = _capi.lib.amo_version().decode()  # the library's, one number for both
library_path = _capi.library_path


def library_info():
    """The libamo in use: its path, version and the commit it was built from
    (12 hex digits, "-dirty" when its sources had uncommitted changes), for
    the metadata kept beside results."""
    return {"path": library_path, "version": __version__,
            "commit": _capi.lib.amo_build_commit().decode()}


def cpu_info():
    """The CPU level detected, the level in use (AMO_ARCH or an optimizer's
    `arch` can force a lower one) and the level each kernel slot runs."""
    _capi.init_from_env()
    lib = _capi.lib
    return {
        "detected": lib.kn_cpu_level_name(lib.kn_cpu_detected()).decode(),
        "level": lib.kn_cpu_level_name(lib.kn_cpu_flags()).decode(),
        "kernels": {lib.kn_kernel_name(k).decode(): lib.kn_kernel_level(k).decode()
                    for k in range(_capi.KN_KERNELS)},
        "library": library_path,
    }


def set_arch(name):
    """Forces the kernel level for the whole process: 'auto', 'scalar', 'avx2',
    'avx512' or 'neon' (as AMO_ARCH does).  A level the CPU lacks is an error."""
    _capi.set_arch(name)


def __getattr__(name):
    if name == "torch":
        return importlib.import_module(".torch", __name__)
    raise AttributeError(f"module 'amo' has no attribute {name!r}")
