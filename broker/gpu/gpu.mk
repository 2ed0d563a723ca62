# broker/gpu/: ferryd's one door to CUDA (gpu.h).  libfgpu.la (gpu.c) is
# linked into ferryd and links no CUDA library; where configure found
# CUDA, gpu_cuda.so (gpu_cuda.c, against libcudart) is a module that
# gpu.c dlopen()s on a node with an NVIDIA device node.  Modules are
# installed to $(pkglibdir); in the build tree they sit in the .libs of
# their folders (GPU_BUILD_MODULE_DIRS, searched by gpu_module_path()).
GPU_BUILD_MODULE_DIRS = $(abs_top_builddir)/broker/gpu/.libs:$(abs_top_builddir)/broker/backends/onnx/.libs

noinst_LTLIBRARIES += broker/gpu/libfgpu.la
broker_gpu_libfgpu_la_SOURCES = broker/gpu/gpu.c broker/gpu/gpu.h broker/gpu/gpu_int.h
broker_gpu_libfgpu_la_CPPFLAGS = $(AM_CPPFLAGS) \
	-DGPU_MODULE_DIR_INSTALL='"$(pkglibdir)"' \
	-DGPU_MODULE_DIR_BUILD='"$(GPU_BUILD_MODULE_DIRS)"'
broker_gpu_libfgpu_la_LIBADD = $(NUMA_LIBS) -ldl

if HAVE_CUDA
pkglib_LTLIBRARIES += broker/gpu/gpu_cuda.la
broker_gpu_gpu_cuda_la_SOURCES = broker/gpu/gpu_cuda.c broker/gpu/gpu_int.h
broker_gpu_gpu_cuda_la_CFLAGS = $(AM_CFLAGS) $(CUDA_CFLAGS)
broker_gpu_gpu_cuda_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared
broker_gpu_gpu_cuda_la_LIBADD = $(CUDART_LIBS)
endif
