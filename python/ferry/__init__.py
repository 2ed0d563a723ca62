# SPDX-License-Identifier: MIT
"""ferry: Python jobs on the node's ferry inference broker.

    import ferry, numpy as np
    with ferry.Client() as c:                      # or ferry.Client("grpc://host:8001")
        m = c.model("simple")
        with m.request() as r:
            x = r.input("INPUT0", np.int32, (1, 16))   # a writable view of shared memory
            x[:] = np.arange(16)
            r.set_input("INPUT1", np.ones((1, 16), np.int32))
            r.infer(timeout=1.0)                   # or: await r.infer_async()
            y = r.output("OUTPUT0")                # read-only, valid inside the with-block

A failed call raises ferry.Error, whose .code is ferry's code name
("FERRY_DTYPE") and .message the broker's reason.  See python/README.md.
"""
from ._lib import lib as _lib
from ._errors import CODES, Error
from ._client import Client, Model, Request, TensorSpec, version
from ._dtypes import NAME as _NAME

#: The path of the libferry this package loaded.
library_path = _lib.path

#: ferry's dtype names ("BOOL", ..., "BF16") by their numbers.
DTYPES = dict(_NAME)

try:  # the installed distribution's, which setup.py takes from configure.ac
    from importlib.metadata import PackageNotFoundError as _NF, version as _dist_version
    __version__ = _dist_version("ferry")
except _NF:  # running from a checkout: the library's
    __version__ = version()

__all__ = ["Client", "Model", "Request", "TensorSpec", "Error", "CODES", "DTYPES", "version",
           "library_path"]
