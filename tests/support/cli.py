"""Commands as a user runs them: `python -m digest …` (or a snippet of Python) in a real subprocess.

Every process gets the same environment: the test's own, less the developer's DIGEST_* settings (a
test that wants one passes it), with this checkout's packages first on the path whatever the working
folder, and SOURCE_DATE_EPOCH pinning the Date header (the reproducible-builds convention) so that two
runs write the same message.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import weakref
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


def invoke(*args: str, env: dict[str, str] | None = None):
    """`digest ARGS` run in this process by Click's test runner: the same command, options and
    environment variables as a subprocess gets (see environment()), without the second of imports
    each new process pays; for tests that run a command many times (the clock moved on each time).
    The result has exit_code, stdout and stderr; an exception the command lets through fails the test.

    A process that ends lets go of its database connections; here the runner does it for the command,
    which would otherwise leave its engines' pooled connections to the garbage collector."""
    from click.testing import CliRunner
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from digest.cli import cli

    engines: weakref.WeakSet[Engine] = weakref.WeakSet()

    def seen(connection) -> None:
        engines.add(connection.engine)

    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("DIGEST_")}
    event.listen(Engine, "engine_connect", seen)
    try:
        return CliRunner().invoke(cli, list(args), env={**unset, "SOURCE_DATE_EPOCH": EPOCH, **(env or {})},
                                  catch_exceptions=False)
    finally:
        event.remove(Engine, "engine_connect", seen)
        for engine in list(engines):
            engine.dispose()


def stop_all(processes: list[subprocess.Popen]) -> list[tuple[str, str]]:
    """stop() for several processes, told all at once: they end side by side, not one after the other."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    return [_ended(process) for process in processes]


def stop(process: subprocess.Popen, sig: signal.Signals = signal.SIGTERM) -> tuple[str, str]:
    """Send `sig` to a process popen() started and wait for its end: its output. One that does not end
    within TIMEOUT is killed (the test fails on its return code, and leaves no process behind)."""
    if process.poll() is None:
        process.send_signal(sig)
    return _ended(process)


def _ended(process: subprocess.Popen) -> tuple[str, str]:
    # Told once only: a second SIGTERM may come after the process has put back the default handler on
    # its way out, and end it as killed.
    try:
        return process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()
