# SPDX-License-Identifier: MIT
"""tune_pbtxt - read and write protobuf's text format, as config.pbtxt uses it.

ferry-tune writes each candidate as the repository's own config.pbtxt with
the fields it tunes replaced, so that everything else a user wrote (reshape,
optional inputs, queue policies, parameters it does not tune) is served
unchanged.  That needs the config as a tree, not as text to patch.

A message is a list of (name, value) pairs in file order; a value is a
Scalar (a token, kept as written: 4, KIND_CPU, "onnx"), a list of pairs (a
nested message) or a List of values (`dims: [ 16, 8 ]`).  Repeated fields
stay repeated pairs; `input [ {..}, {..} ]` is one pair whose value is a
List of messages.  Comments are dropped.  Errors name the line and column.
"""

import re

__all__ = ["Scalar", "List", "ParseError", "parse", "dump", "get", "get_all",
           "remove", "set_scalar", "quote", "unquote"]


class ParseError(ValueError):
    pass


class Scalar(str):
    """A scalar token as written (strings keep their quotes)."""


class List(list):
    """The value of `name: [ a, b ]` or `name [ {..}, {..} ]`."""


_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n]+|\#[^\n]*)
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<word>[-+]?[A-Za-z0-9_.]+)
  | (?P<punct>[{}\[\]:,;<>])
""", re.X)


def _tokens(text):
    pos, line, col0 = 0, 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ParseError("line %d, column %d: unexpected %r" %
                             (line, pos - col0 + 1, text[pos]))
        kind = m.lastgroup
        if kind != "ws":
            yield kind, m.group(), line, pos - col0 + 1
        nl = m.group().count("\n")
        if nl:
            line += nl
            col0 = m.start() + m.group().rindex("\n") + 1
        pos = m.end()
    yield "eof", "", line, pos - col0 + 1


class _Parser:
    def __init__(self, text):
        self.toks = list(_tokens(text))
        self.i = 0

    def peek(self):
        return self.toks[self.i]

    def take(self, want=None):
        t = self.toks[self.i]
        if want is not None and t[1] != want:
            self.fail("expected %r" % want)
        self.i += 1
        return t

    def fail(self, msg):
        kind, text, line, col = self.peek()
        raise ParseError("line %d, column %d: %s, found %s" %
                         (line, col, msg, repr(text) if kind != "eof" else "the end"))

    def message(self, end):
        out = []
        while self.peek()[1] != end or (end == "" and self.peek()[0] != "eof"):
            kind, name, _, _ = self.peek()
            if kind == "eof":
                self.fail("expected %r" % end)
            if kind != "word" or not re.match(r"[A-Za-z_]", name):
                self.fail("expected a field name")
            self.take()
            colon = self.peek()[1] == ":"
            if colon:
                self.take()
            out.append((name, self.value(colon)))
            if self.peek()[1] in (",", ";"):
                self.take()
        return out

    def value(self, colon):
        kind, text, _, _ = self.peek()
        if text in ("{", "<"):
            self.take()
            v = self.message("}" if text == "{" else ">")
            self.take()
            return v
        if text == "[":
            self.take()
            items = List()
            while self.peek()[1] != "]":
                items.append(self.value(True))
                if self.peek()[1] == ",":
                    self.take()
                elif self.peek()[1] != "]":
                    self.fail("expected ',' or ']'")
            self.take()
            return items
        if not colon:
            self.fail("expected ':', '{' or '['")
        if kind == "str":
            # adjacent strings concatenate, as in protobuf's text format
            parts = [self.take()[1]]
            while self.peek()[0] == "str":
                parts.append(self.take()[1])
            return Scalar(parts[0] if len(parts) == 1 else quote("".join(map(unquote, parts))))
        if kind == "word":
            return Scalar(self.take()[1])
        self.fail("expected a value")


def parse(text):
    """The message of config text `text`; raises ParseError."""
    p = _Parser(text)
    msg = p.message("")
    return msg


def unquote(tok):
    """The string a quoted token stands for ("a\\"b" -> a"b); a bare token as is."""
    if len(tok) >= 2 and tok[0] in "\"'" and tok[-1] == tok[0]:
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)),
                      tok[1:-1])
    return str(tok)


def quote(s):
    return Scalar('"' + str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                  + '"')


def _dump_value(v, ind):
    if isinstance(v, List):
        if not v:
            return "[ ]"
        if all(isinstance(x, str) for x in v):
            return "[ " + ", ".join(v) + " ]"
        pad = "  " * (ind + 1)
        return "[\n" + ",\n".join(pad + _dump_value(x, ind + 1) for x in v) + "\n" + \
            "  " * ind + "]"
    if isinstance(v, list):
        if not v:
            return "{ }"
        return "{\n" + _dump_msg(v, ind + 1) + "  " * ind + "}"
    return str(v)


def _dump_msg(msg, ind):
    out = []
    for name, v in msg:
        scalar = isinstance(v, str) or (isinstance(v, List) and
                                        all(isinstance(x, str) for x in v))
        sep = ": " if scalar else " "
        out.append("  " * ind + name + sep + _dump_value(v, ind) + "\n")
    return "".join(out)


def dump(msg):
    """Text of message `msg`, in the layout Triton's examples use."""
    return _dump_msg(msg, 0)


def get_all(msg, name):
    """Every value of field `name` (a List value counts as its items)."""
    out = []
    for n, v in msg:
        if n == name:
            out.extend(v if isinstance(v, List) else [v])
    return out


def get(msg, name, default=None):
    vals = get_all(msg, name)
    return vals[-1] if vals else default


def remove(msg, *names):
    """msg without the fields `names` (a new list)."""
    return [(n, v) for n, v in msg if n not in names]


def set_scalar(msg, name, value):
    """msg with one field `name` set to scalar `value` (a new list)."""
    return remove(msg, name) + [(name, Scalar(value))]
