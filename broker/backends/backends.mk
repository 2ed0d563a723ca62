# broker/backends/: the backends ferryd carries: identity and add_sub
# (built into the scheduler library), the native ONNX executor (onnx/).
include broker/backends/onnx/onnx.mk
