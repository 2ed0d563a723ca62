# SPDX-License-Identifier: MIT
"""examples/python/ run as a user would run them, against a real ferryd."""
import os
import subprocess
import sys

from conftest import TOP


def run_example(name, *args):
    out = subprocess.run([sys.executable, os.path.join(TOP, "examples", "python", name), *args],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_simple_example(broker):
    out = run_example("simple.py", broker.sock)
    assert "0 + 1 = 1\n" in out and "15 - 1 = 14\n" in out
    assert "simple: ok;" in out


def test_batch_loop_example(broker):
    out = run_example("batch_loop.py", broker.sock, "--rows", "5000", "--batch", "64")
    assert out.startswith("batch_loop: ok; 5000 rows of 256 FP32 in batches of 64")
    # The last batch short: 5000 = 78 x 64 + 8.
    out = run_example("batch_loop.py", broker.sock, "--rows", "1000", "--batch", "48")
    assert out.startswith("batch_loop: ok; 1000 rows")


def test_simple_example_over_grpc(broker):
    assert "simple: ok;" in run_example("simple.py", "grpc://" + broker.url)


def test_using_md_python_block_as_written(broker):
    # docs/USING.md's "From Python" block, run exactly as the page has it.
    with open(os.path.join(TOP, "docs", "USING.md")) as f:
        text = f.read()
    block = text.split("### From Python", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    out = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, FERRY_SOCKET=broker.sock))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.replace("[", " ").replace("]", " ").split() == \
        [str(k) for k in range(1, 17)], out.stdout
