# SPDX-License-Identifier: MIT
"""ferry.Error: a failed libferry call as a Python exception."""
from ._lib import lib


class Error(Exception):
    """A ferry call failed.

    code     the name of ferry's error code (include/ferry/errors.h), for
             example "FERRY_DTYPE", "FERRY_ETIMEDOUT", "FERRY_EPIPE"
    errno    the code's number (negative, as libferry returns it)
    message  the detailed message (the broker's reason where it gave one)
    """

    def __init__(self, errno, message=None):
        self.errno = int(errno)
        self.code = lib.ferry_errname(self.errno).decode()
        if not message:
            message = lib.ferry_strerror(self.errno).decode()
        self.message = message
        super().__init__(self.errno, message)

    def __str__(self):
        return "%s: %s" % (self.code, self.message)

    def __repr__(self):
        return "ferry.Error(%s, %r)" % (self.code, self.message)


def last_error(errno):
    """The Error of a call that just returned errno on this thread, with
    libferry's detailed message (ferry_last_error is per thread)."""
    msg = lib.ferry_last_error()
    return Error(errno, msg.decode(errors="replace") if msg else None)


def _codes():
    """Every code of errors.h by name, from the library itself."""
    out = {}
    # errno values ferry uses are small; its own codes sit at -2001...
    for v in list(range(-1, -200, -1)) + list(range(-2001, -2100, -1)):
        name = lib.ferry_errname(v).decode()
        if name.startswith("FERRY_") and name not in out and "UNKNOWN" not in name:
            out[name] = v
    return out


CODES = _codes()
