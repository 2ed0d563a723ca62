#!/bin/sh
# SPDX-License-Identifier: MIT
# gpu-pack.sh - prepare devlibs/ (gitignored) for a GPU machine that has
# the NVIDIA driver and CUDA but none of the Debian libraries ferry links.
#
#   scripts/gpu-pack.sh [BUILD_DIR]      (default build-onnx; run here,
#                                         after `make` and `make check`
#                                         have built every program)
#
# 1. Runs ldd on the programs scripts/gpu-check.sh runs (ferryd, the ONNX
#    tests, the plugin, ferry-onnx-bench) and the CUDA modules ferryd
#    dlopen()s (gpu_cuda.so, ox_cuda.so), and, for every library they load
#    from the system (not glibc's own, not CUDA's: the GPU machine has
#    those), finds its Debian package (dpkg -S), fetches it with
#    `apt-get download`, unpacks it with `dpkg -x` and copies the library
#    into devlibs/.  A library no package owns is copied as it is.
# 2. Copies the build's own shared libraries (libferry.so) into devlibs/.
# 3. Generates the test models and onnxruntime's references into
#    devlibs/models with the venv's python (the GPU machine has no venv).
#
# Then run the device command with carry [devpack] and, after
# `tar xzf devpack/ferry-gpu.tgz`,
# `scripts/gpu-check.sh BUILD_DIR`.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-onnx}
case $build in /*) ;; *) build=$top/$build ;; esac
dest=$top/devlibs
work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-pack.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

real() {	# the ELF behind a libtool wrapper
	d=$(dirname "$1"); n=$(basename "$1")
	if [ -f "$d/.libs/$n" ]; then echo "$d/.libs/$n"; else echo "$1"; fi
}

progs="$build/broker/ferryd
$(real "$build/tests/onnx/test_onnx_gpu")
$(real "$build/tests/onnx/test_onnx_broker")
$(real "$build/tests/onnx/test_onnx")
$(real "$build/ferry-onnx-bench")
$(real "$build/ferry-bench-saturate")
$(real "$build/tests/onnx/test_cuda_ipc")
$(real "$build/tests/test_cuda_shm")
$(real "$build/tests/test_gpu")
$(real "$build/tests/test_start")
$(real "$build/tests/onnxruntime/test_ort_gpu")
$build/broker/backends/onnxruntime/.libs/libferry_onnxruntime.so
$build/tests/onnx/.libs/libferry_onnx.so
$build/broker/gpu/.libs/gpu_cuda.so
$build/broker/backends/onnx/.libs/ox_cuda.so"

mkdir -p "$dest"
: > "$work/libs"
for p in $progs; do
	[ -f "$p" ] || { echo "gpu-pack: $p is missing: build it first" >&2; exit 1; }
	LD_LIBRARY_PATH=$build/libclient/.libs ldd "$p" |
		awk '$2 == "=>" && $3 ~ /^\// { print $3 }' >> "$work/libs"
done
sort -u "$work/libs" -o "$work/libs"

while read -r lib; do
	base=$(basename "$lib")
	case $base in
	# glibc's own and the dynamic loader: the GPU machine's must serve
	libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libresolv.so*)
		continue ;;
	# CUDA's: the GPU machine has its driver and toolkit
	libcuda.so*|libcudart.so*|libcublas*.so*|libnvidia*) continue ;;
	esac
	case $lib in "$build"/*)
		cp -L "$lib" "$dest/$base"; echo "build    $base"; continue ;;
	esac
	real_lib=$(readlink -f "$lib")
	pkg=$(dpkg -S "$real_lib" 2>/dev/null | head -n1 | cut -d: -f1 || true)
	[ -n "$pkg" ] || pkg=$(dpkg -S "$lib" 2>/dev/null | head -n1 | cut -d: -f1 || true)
	if [ -z "$pkg" ]; then
		cp -L "$lib" "$dest/$base"
		echo "copied   $base (no package owns it)"
		continue
	fi
	arch=$(dpkg --print-architecture)
	if [ ! -d "$work/x.$pkg" ]; then
		(cd "$work" && apt-get download "$pkg:$arch" >/dev/null 2>&1 ||
		 apt-get download "$pkg" >/dev/null)
		deb=$(ls "$work"/"${pkg}"_*.deb 2>/dev/null | head -n1)
		[ -n "$deb" ] || { echo "gpu-pack: apt-get download $pkg failed" >&2; exit 1; }
		dpkg -x "$deb" "$work/x.$pkg"
	fi
	found=$(find "$work/x.$pkg" -name "$(basename "$real_lib")" | head -n1)
	[ -n "$found" ] || found=$(find "$work/x.$pkg" -name "$base" | head -n1)
	if [ -z "$found" ]; then
		cp -L "$lib" "$dest/$base"
		echo "copied   $base ($pkg does not hold $(basename "$real_lib"))"
		continue
	fi
	cp -L "$found" "$dest/$base"
	echo "$pkg $base"
done < "$work/libs"

# the build's shared libraries (libtool wrappers find them in place here,
# the GPU machine's copy may sit elsewhere)
for so in "$build"/libclient/.libs/libferry.so*; do
	[ -e "$so" ] && cp -P "$so" "$dest/"
done

py=$top/.venv/bin/python
rm -rf "$dest/models"
"$py" "$top/tests/onnx/gen_models.py" "$dest/models" > /dev/null
rm -rf "$dest/ort-models"
"$py" "$top/tests/onnxruntime/gen_ort_models.py" "$dest/ort-models" > /dev/null
echo "gpu-pack: $(ls "$dest" | wc -l) entries, $(du -sh "$dest" | cut -f1) in $dest"

# 4. One archive of what travels (devlibs/ alone is over the device tool's
#    64 MiB: OpenBLAS's every-CPU build is 36 MiB; gzip takes it to ~27).
#    On the GPU machine: tar xzf devpack/ferry-gpu.tgz first.
rel=${build#"$top"/}
mkdir -p "$top/devpack"
(cd "$top" && tar czf devpack/ferry-gpu.tgz devlibs "$rel/broker/ferryd" \
	"$rel/broker/gpu/.libs" "$rel/broker/backends/onnx/.libs" \
	"$rel/broker/backends/onnxruntime/.libs" \
	"$rel/tests" "$rel/.libs" \
	"$rel"/ferry-* "$rel/libclient/.libs" "$rel/tools" 2>/dev/null || true)
echo "gpu-pack: $(du -h "$top/devpack/ferry-gpu.tgz" | cut -f1) in devpack/ferry-gpu.tgz (carry devpack)"
