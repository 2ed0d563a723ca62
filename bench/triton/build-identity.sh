#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench/triton/build-identity.sh - build Triton's C++ identity backend
# (triton-inference-server/identity_backend, release branch r24.10: the
# Triton 2.51 that nvidia-pytriton 0.7.0 ships) outside this repository,
# for bench/triton/run.sh and bench/flood.sh.  The wheel carries only the
# Python backend; the C++ identity backend is what Triton measures itself
# with.
#
#   bench/triton/build-identity.sh REPOS_DIR [OUT_DIR]
#
# REPOS_DIR holds git clones (or mirrors) of the four repositories, each
# in a directory named after it: identity_backend, common, core and
# backend (or triton-inference-server+NAME/repo, the layout of the
# mirrors the project's tools make).  Nothing is downloaded: CMake's
# FetchContent is pointed at those checkouts.  OUT_DIR (default
# /tmp/triton-identity) gets the sources (git archive of the branch), the
# build, and backends/identity/libtriton_identity.so, the layout Triton's
# --backend-directory wants.  Needs cmake, g++ and rapidjson-dev (Debian).
# None of their code enters this repository.
set -euo pipefail
repos=${1:?usage: build-identity.sh REPOS_DIR [OUT_DIR]}
out=${2:-/tmp/triton-identity}
branch=${TRITON_BRANCH:-r24.10}
command -v cmake >/dev/null || { echo "build-identity.sh: cmake not found" >&2; exit 1; }
[ -f /usr/include/rapidjson/document.h ] ||
	{ echo "build-identity.sh: rapidjson-dev (Debian) is needed" >&2; exit 1; }
mkdir -p "$out/src"
for r in identity_backend common core backend; do
	d=$repos/$r
	[ -d "$d" ] || d=$repos/triton-inference-server+$r/repo
	[ -d "$d" ] || { echo "build-identity.sh: no $r under $repos" >&2; exit 1; }
	rm -rf "${out:?}/src/$r"
	mkdir -p "$out/src/$r"
	git -C "$d" archive "$branch" | tar -x -C "$out/src/$r"
done
# common's unit tests need GoogleTest and are not what is built here.
sed -i 's|^add_subdirectory(test)|# &|' "$out/src/common/src/CMakeLists.txt"
cmake -S "$out/src/identity_backend" -B "$out/build" -DCMAKE_BUILD_TYPE=Release \
	-DTRITON_ENABLE_GPU=OFF -DTRITON_ENABLE_STATS=ON \
	-DFETCHCONTENT_FULLY_DISCONNECTED=ON \
	-DFETCHCONTENT_SOURCE_DIR_REPO-COMMON="$out/src/common" \
	-DFETCHCONTENT_SOURCE_DIR_REPO-CORE="$out/src/core" \
	-DFETCHCONTENT_SOURCE_DIR_REPO-BACKEND="$out/src/backend" \
	-DCMAKE_INSTALL_PREFIX="$out/install" >"$out/cmake.log" 2>&1 ||
	{ tail -30 "$out/cmake.log"; exit 1; }
cmake --build "$out/build" -j"$(nproc)" >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
mkdir -p "$out/backends/identity"
cp "$(find "$out/build" -name libtriton_identity.so | head -1)" "$out/backends/identity/"
echo "build-identity.sh: $out/backends/identity/libtriton_identity.so ($branch)"
