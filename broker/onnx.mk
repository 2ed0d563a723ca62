# onnx part of broker/ (included by the top Makefile.am)
