# SPDX-License-Identifier: MIT
"""`pip install ./python` works from a checkout (the installed package
finds the checkout's build tree) and after `make install` (it finds the
installed libferry.so.0 by its soname, or through pkg-config), each
checked by a real request from a fresh interpreter."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import BUILD, TOP

SNIPPET = """
import ferry, numpy as np
print(ferry.library_path)
with ferry.Client() as c:
    with c.model("simple").request() as r:
        r.set_input("INPUT0", np.arange(16, dtype=np.int32).reshape(1, 16))
        r.set_input("INPUT1", np.ones((1, 16), np.int32))
        r.infer(timeout=10)
        assert (r.output("OUTPUT0") == np.arange(1, 17)).all()
print("ok")
"""


def can_build_wheels_here():
    try:
        import setuptools
        from setuptools.command import bdist_wheel  # noqa: F401 - setuptools >= 70.1
        return bool(setuptools)
    except ImportError:
        try:
            import wheel  # noqa: F401 - older setuptools take bdist_wheel from it
            return True
        except ImportError:
            return False


def pip_install(target):
    # Without build isolation where this environment can build a wheel
    # (scripts/setup-debian.sh installs `wheel`): no download.
    iso = ["--no-build-isolation"] if can_build_wheels_here() else []
    out = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--disable-pip-version-check", *iso,
                          "--target", str(target), os.path.join(TOP, "python")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr


def run_installed(target, broker, cwd, **env_more):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FERRY_", "PKG_CONFIG", "LD_LIBRARY_PATH", "PYTHON"))}
    env.update(PYTHONPATH=str(target), FERRY_SOCKET=broker.sock, **env_more)
    out = subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True,
                         timeout=120, env=env, cwd=str(cwd))
    assert out.returncode == 0 and out.stdout.endswith("ok\n"), out.stdout + out.stderr
    return out.stdout.splitlines()[0]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    t = tmp_path_factory.mktemp("site")
    pip_install(t)
    return t


def test_pip_install_from_checkout_finds_its_build_tree(installed, broker, tmp_path):
    lib = os.path.join(TOP, "build", "libclient", ".libs", "libferry.so.0")
    if not os.path.exists(lib):
        pytest.skip("the checkout has no build/ tree (built elsewhere): nothing to find")
    with open(os.path.join(installed, "ferry", "_origin.py")) as f:
        assert repr(TOP) in f.read()
    assert os.path.realpath(run_installed(installed, broker, tmp_path)) == os.path.realpath(lib)


def test_installed_package_finds_make_installed_libferry(installed, broker, tmp_path):
    # libferry and ferry.pc installed under a DESTDIR (only those: the
    # rest of `make install` is tests/install/test_install.sh's), and the
    # package as from a wheel made elsewhere (no checkout recorded).
    root = tmp_path / "root"
    out = subprocess.run(["make", "-s", "-C", BUILD, "install-libLTLIBRARIES",
                          "install-pkgconfigDATA", "DESTDIR=%s" % root],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    libdir = os.path.dirname(next(
        os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f == "libferry.so.0"))
    pcdir = os.path.dirname(next(
        os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f == "ferry.pc"))
    site = tmp_path / "site"
    shutil.copytree(installed, site)
    os.remove(site / "ferry" / "_origin.py")

    # By its soname, through the dynamic loader.
    assert run_installed(site, broker, tmp_path, LD_LIBRARY_PATH=libdir) == "libferry.so.0"

    # Through pkg-config, where the loader does not look.
    if shutil.which("pkg-config") is None:
        pytest.skip("no pkg-config")
    probe = subprocess.run([sys.executable, "-c", "import ctypes; ctypes.CDLL('libferry.so.0')"],
                           capture_output=True)
    if probe.returncode == 0:
        pytest.skip("a libferry.so.0 is installed system-wide: the loader finds it first")
    got = run_installed(site, broker, tmp_path, PKG_CONFIG_PATH=pcdir,
                        PKG_CONFIG_SYSROOT_DIR=str(root))
    assert got == os.path.join(libdir, "libferry.so.0")
