#!/usr/bin/env bash
# make install into a temporary root, build a C and a C++ program against
# the installed libferry with pkg-config, and run both against a ferryd
# started from the installed binary on the installed example repository.
set -euo pipefail
top=${FERRY_TOP_SRCDIR:?run through make check}
build=${FERRY_TOP_BUILDDIR:?run through make check}
command -v pkg-config >/dev/null || { echo "no pkg-config"; exit 77; }
root=$(mktemp -d /tmp/ferry-install-XXXXXX)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$root"' EXIT

make -s -C "$build" install DESTDIR="$root" >"$root/install.log" 2>&1 ||
	{ tail -20 "$root/install.log"; exit 1; }
pc=$(find "$root" -name ferry.pc | head -1)
[ -n "$pc" ] || { echo "ferry.pc not installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$root
flags=$(pkg-config --cflags --libs ferry)
libdir=$(pkg-config --libs-only-L ferry | sed 's/^ *-L//; s/ *$//')
echo "pkg-config --cflags --libs ferry: $flags"
# A sanitized build's libferry needs the sanitizer runtime in the program.
san=$(sed -n 's/^FERRY_LDFLAGS = //p' "$build/Makefile")
cc -std=c11 -Wall -Werror $san "$top/tests/install/prog.c" $flags -Wl,-rpath,"$libdir" -o "$root/prog_c"
c++ -std=c++11 -Wall -Werror $san "$top/tests/install/prog.cc" $flags -Wl,-rpath,"$libdir" -o "$root/prog_cxx"

# One version everywhere: ferry.pc, ferry/version.h, ferryd, ferryctl (the
# last through libferry's ferry_version()).
version=$(pkg-config --modversion ferry)
vh=$(find "$root" -path '*/include/ferry/version.h' | head -1)
[ -n "$vh" ] || { echo "ferry/version.h not installed"; exit 1; }
grep -q "^#define FERRY_VERSION_STRING \"$version\"\$" "$vh" ||
	{ echo "$vh does not say $version"; exit 1; }
ferryd=$(find "$root" -path '*/sbin/ferryd' | head -1)
ferryctl=$(find "$root" -path '*/bin/ferryctl' | head -1)
[ "$("$ferryd" --version)" = "ferryd $version" ] || { echo "ferryd --version: $("$ferryd" --version)"; exit 1; }
[ "$(LD_LIBRARY_PATH=$libdir "$ferryctl" --version)" = "ferryctl $version" ] ||
	{ echo "ferryctl --version: $(LD_LIBRARY_PATH=$libdir "$ferryctl" --version)"; exit 1; }
models=$(find "$root" -path '*/share/ferry/examples/models' -type d | head -1)
[ -x "$ferryd" ] && [ -d "$models" ] || { echo "ferryd or the examples not installed"; exit 1; }
"$ferryd" --model-repository "$models" --socket "$root/ferryd.sock" --grpc-port 0 \
	--metrics-port 0 --log-level warn &
pid=$!
for _ in $(seq 200); do [ -S "$root/ferryd.sock" ] && break; sleep 0.05; done
"$root/prog_c" "$root/ferryd.sock"
"$root/prog_cxx" "$root/ferryd.sock"
# The units and man pages are there too.
for f in ferryd.service ferryd.socket ferryd.8 ferryctl.1 libferry.3 ferry-bench.1; do
	find "$root" -name "$f" | grep -q . || { echo "$f not installed"; exit 1; }
done
kill $pid
wait $pid
pid=
echo "PASS: installed ferryd and libferry work from C and C++"
