"""Commands as a user runs them: `python -m digest …` (or a snippet of Python) in a real subprocess.

Every process gets the same environment: the test's own, less the developer's DIGEST_* settings (a
test that wants one passes it), with this checkout's packages first on the path whatever the working
folder, and SOURCE_DATE_EPOCH pinning the Date header (the reproducible-builds convention) so that two
runs write the same message.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.paths import ROOT

EPOCH = "1796000000"
# Seconds a command may take before the test gives up on it: a safety net for a machine whose cores are
# all busy (the slowest command of the suite takes a few seconds there), never a pace a test relies on.
TIMEOUT = 180.0


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a command: see the module's docstring. `extra` wins, and its PYTHONPATH
    comes after the checkout's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env["SOURCE_DATE_EPOCH"] = EPOCH
    env.update(extra or {})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def python(*args: str, cwd: Path | str = ROOT, env: dict[str, str] | None = None, input: str | bytes | None = None,
           timeout: float | None = TIMEOUT) -> subprocess.CompletedProcess:
    """`python ARGS` run to its end, its output captured (as bytes when `input` is bytes, else as text).
    (timeout=None: as long as it takes, for a benchmark.)

    A traceback fails the test: a user never sees one for something they can cause."""
    text = not isinstance(input, bytes)
    result = subprocess.run([sys.executable, *args], capture_output=True, text=text, input=input, cwd=cwd,
                            env=environment(env), timeout=timeout)
    assert ("Traceback" if text else b"Traceback") not in result.stderr, result.stderr
    return result


def digest(*args: str, cwd: Path | str = ROOT, env: dict[str, str] | None = None, input: str | bytes | None = None,
           timeout: float | None = TIMEOUT) -> subprocess.CompletedProcess:
    """`digest ARGS`, as `python -m digest ARGS` (see python())."""
    return python("-m", "digest", *args, cwd=cwd, env=env, input=input, timeout=timeout)


def popen(*args: str, cwd: Path | str = ROOT, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python ARGS` running, its three streams piped as text: the caller ends it with communicate(),
    which also closes them."""
    return subprocess.Popen([sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd, env=environment(env))
