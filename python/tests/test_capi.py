"""The ctypes mirror of optim/optim.h and how the library is found."""
import ctypes
import os
import subprocess
import sys

import pytest

import amo
from amo import _capi


def test_struct_layout_matches_the_compiler():
    """Every field offset and size, and each struct's size, as the C compiler
    lays them out (python/layout.c): a field added to optim.h fails here."""
    out = subprocess.run([os.environ["AMO_LAYOUT"]], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    seen = set()
    for line in filter(None, out):
        parts = line.split()
        s = _capi.STRUCTS[parts[0]]
        if parts[1] == "sizeof":
            assert ctypes.sizeof(s) == int(parts[2]), f"sizeof({parts[0]})"
            continue
        field = getattr(s, parts[1])
        assert (field.offset, field.size) == (int(parts[2]), int(parts[3])), \
            f"{parts[0]}.{parts[1]}"
        seen.add((parts[0], parts[1]))
    mirrored = {(n, f[0]) for n, s in _capi.STRUCTS.items() for f in s._fields_}
    assert seen == mirrored


def test_library_from_the_build_tree():
    assert os.path.samefile(amo.library_path, os.environ["AMO_LIBRARY"])


def test_library_info():
    """The version is meson.build's; the commit, where the tests run from a
    git checkout with git at hand, is that checkout's HEAD (the library is
    built from it by the same meson run), without "-dirty" when no tracked
    file differs from HEAD."""
    info = amo.library_info()
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    with open(os.path.join(root, "meson.build")) as f:
        want = next(line.split("'")[1] for line in f if line.strip().startswith("version :"))
    assert info["version"] == want == amo.__version__
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        assert info["commit"].startswith("unknown")
        return
    clean = subprocess.run(["git", "-C", root, "diff", "--quiet", "HEAD"]).returncode == 0
    assert info["commit"] == head if clean else info["commit"] in (head, head + "-dirty")


def test_cpu_info():
    info = amo.cpu_info()
    assert info["level"] in ("scalar", "avx2", "avx512", "avx512bf16", "neon")
    assert set(info["kernels"]) == {"amo", "amo_bf16", "sgd", "rmsprop", "sumsq"}
    assert info["library"] == amo.library_path


def run_python(code, **env):
    e = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e)


def test_import_without_torch_and_a_missing_library():
    # amo.torch is imported on first use: `import amo` needs no torch
    r = run_python("import sys, amo; amo.cpu_info(); print('torch' in sys.modules)")
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr
    r = run_python("import amo", AMO_LIBRARY="/nonexistent/libamo.so.0")
    assert r.returncode != 0
    assert "cannot load libamo; tried /nonexistent/libamo.so.0 (no such file)" in r.stderr
    assert "set AMO_LIBRARY" in r.stderr


def test_bad_amo_arch_is_an_error():
    r = run_python("import amo; amo.cpu_info()", AMO_ARCH="bogus")
    assert r.returncode != 0 and "AMO_ARCH='bogus'" in r.stderr


def test_set_arch():
    with pytest.raises(ValueError, match="arch 'sse9': unknown level"):
        amo.set_arch("sse9")
    missing = "neon" if os.uname().machine == "x86_64" else "avx512"
    with pytest.raises(RuntimeError, match=f"arch '{missing}'"):
        amo.set_arch(missing)
    amo.set_arch("scalar")
    try:
        assert amo.cpu_info()["kernels"]["amo"] == "scalar"
    finally:
        amo.set_arch(os.environ.get("AMO_ARCH", "auto"))  # as the suite was run
