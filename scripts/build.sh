#!/usr/bin/env bash
# Configure (once) and build ferry in build/.  Extra arguments go to
# configure, e.g. scripts/build.sh --enable-sanitizers.  One line per step
# as it starts, and where its log is.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mkdir -p build
if [ ! -x configure ]; then
	echo "== configure: autoreconf -fi, which generates ./configure (log: build/autoreconf.out)"
	autoreconf -fi >build/autoreconf.out 2>&1 || { cat build/autoreconf.out; exit 1; }
fi
cd build
if [ ! -f Makefile ] || [ $# -gt 0 ]; then
	echo "== configure: ../configure --enable-werror $* (log: build/configure.out)"
	../configure --enable-werror "$@" >configure.out 2>&1 || { tail -30 configure.out; exit 1; }
	sed -n '/configured$/,$p' configure.out
fi
echo "== build: make -j$(nproc) in build/ (log: build/make.out)"
make -j"$(nproc)" >make.out 2>&1 || { tail -50 make.out; echo "build failed: see build/make.out"; exit 1; }
