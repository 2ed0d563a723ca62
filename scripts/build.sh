#!/usr/bin/env bash
# Configure (once) and build ferry in build/.  Extra arguments go to
# configure, e.g. scripts/build.sh --enable-sanitizers.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[ -x configure ] || autoreconf -fi >/dev/null
mkdir -p build
cd build
if [ ! -f Makefile ] || [ $# -gt 0 ]; then
	../configure --enable-werror "$@" >configure.out || { cat configure.out; exit 1; }
	sed -n '/configured$/,$p' configure.out
fi
make -j"$(nproc)" >make.out 2>&1 || { tail -50 make.out; exit 1; }
