# SPDX-License-Identifier: MIT
"""pyproject.toml holds the metadata; this file adds two things that need
code at build time: the version, read from configure.ac's AC_INIT (the one
place ferry writes it), and ferry/_origin.py, which records the checkout
a wheel was built from so that the installed package finds that
checkout's build tree (build/libclient/.libs/libferry.so.0)."""
import os
import re

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)


def version():
    try:
        with open(os.path.join(TOP, "configure.ac")) as f:
            m = re.search(r"AC_INIT\(\[ferry\],\s*\[([^\]]+)\]", f.read())
        if m:
            return m.group(1)
    except OSError:
        pass
    # An sdist: its PKG-INFO carries the version it was made with.
    with open(os.path.join(HERE, "PKG-INFO")) as f:
        for line in f:
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    raise RuntimeError("no version: neither ../configure.ac nor PKG-INFO")


class BuildPy(build_py):
    def run(self):
        super().run()
        if os.path.isfile(os.path.join(TOP, "libclient", "libferry.map")):
            path = os.path.join(self.build_lib, "ferry", "_origin.py")
            with open(path, "w") as f:
                f.write("# Written by setup.py: the checkout this package was built from.\n"
                        "CHECKOUT = %r\n" % TOP)


setup(version=version(), cmdclass={"build_py": BuildPy})
