"""A warm parent for the kill -9 loops: imports the platform once, then forks a child per cycle.

Each cycle of tests/test_crash_kill.py used to start a fresh interpreter that spent 1-2 s of CPU
importing the platform before it wrote anything, so most kills landed in start-up, and the
projection worker (given 0.3-1.0 s) was mostly killed before it had read the log. A forked child
starts in milliseconds and is still a separate process killed with SIGKILL: the crash the tests
simulate is the same.

    python -m tests.zygote MODULE [MODULE ...]

imports the modules, prints ``UP``, then serves one JSON request per stdin line:
``{"spawn": [module, *args], "stdout": path, "stderr": path}`` -> ``{"pid": n}`` (the child runs
``module`` as ``__main__`` with those arguments, its output appended to the files);
``{"poll": pid}`` / ``{"wait": pid}`` -> ``{"exit": code or null}``. It stays single-threaded
and holds no connection, so a fork copies nothing a child could share.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _run_child(argv: list[str], stdout: str, stderr: str, env: dict[str, str] | None, cwd: str | None) -> None:
    """In the forked child: the module as a program, then exit without returning to the loop."""
    code = 0
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        if env is not None:  # as a fresh process started with this environment would see it
            os.environ.clear()
            os.environ.update(env)
            settings = sys.modules.get("services.settings")
            if settings is not None:
                settings.get_settings.cache_clear()
        if cwd is not None:
            os.chdir(cwd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(os.open(stdout, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644), 1)
        os.dup2(os.open(stderr, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644), 2)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115  (the process ends with os._exit)
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.argv = list(argv)
        # The module was imported by the zygote: runpy warns that it runs a second copy as
        # __main__, which is what `python -m` does too once anything imports the module.
        warnings.filterwarnings("ignore", message=".*found in sys.modules after import", category=RuntimeWarning)
        runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _status(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def serve(modules: list[str]) -> None:
    for name in modules:
        importlib.import_module(name)
    out = sys.stdout
    out.write("UP\n")
    out.flush()
    for line in sys.stdin:
        request: dict[str, Any] = json.loads(line)
        answer: dict[str, Any]
        if "spawn" in request:
            out.flush()
            pid = os.fork()
            if pid == 0:
                _run_child(request["spawn"], request["stdout"], request["stderr"], request.get("env"),
                           request.get("cwd"))
            answer = {"pid": pid}
        else:
            pid = int(request.get("poll") or request["wait"])
            done, status = os.waitpid(pid, os.WNOHANG if "poll" in request else 0)
            answer = {"exit": _status(status) if done else None}
        out.write(json.dumps(answer) + "\n")
        out.flush()


class Zygote:
    """The test side: one warm parent per test, started with the children's environment."""

    def __init__(self, modules: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.zygote", *modules], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._lock = threading.Lock()
        assert self.proc.stdout is not None
        up = self.proc.stdout.readline()
        assert up == "UP\n", f"the zygote did not start: {up!r}"

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        assert line, f"the zygote died (exit {self.proc.poll()})"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def spawn(self, argv: list[str], stdout: Path, stderr: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> ForkedProcess:
        """``env``/``cwd``: the child's own (default: the zygote's)."""
        stdout.touch()
        request = {"spawn": argv, "stdout": str(stdout), "stderr": str(stderr), "env": env,
                   "cwd": None if cwd is None else str(cwd)}
        return ForkedProcess(self, int(self.ask(request)["pid"]), stdout)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class ForkedProcess:
    """What the kill loops use of a ``subprocess.Popen``, for a child of the zygote. ``stdout``
    yields the child's lines as it writes them (a last line without its newline too), and ends
    once the child has been reaped and everything it wrote was read."""

    def __init__(self, zygote: Zygote, pid: int, out: Path) -> None:
        self.zygote = zygote
        self.pid = pid
        self.returncode: int | None = None
        self.stdout = self._tail(out)

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.zygote.ask({"poll": self.pid})["exit"]
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:  # same signature as Popen.wait; a killed child ends at once
        if self.returncode is None:
            self.returncode = int(self.zygote.ask({"wait": self.pid})["exit"])
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def _tail(self, path: Path) -> Iterator[str]:
        pending = ""
        with path.open(encoding="utf-8") as f:
            while True:
                finished = self.returncode is not None  # read before the last read: nothing is missed
                chunk = f.read()
                if chunk:
                    lines = (pending + chunk).split("\n")
                    pending = lines.pop()
                    yield from (line + "\n" for line in lines)
                elif finished:
                    if pending:
                        yield pending
                    return
                else:
                    time.sleep(0.005)


_CLI: dict[str, Zygote] = {}


def run_cli(args: list[str], *, env: dict[str, str], timeout: float,
            cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``python -m services.cli ARGS`` as ``subprocess.run(..., capture_output=True, text=True)``
    would run it, forked from a warm parent shared by the test process (the CLI's imports paid
    once, not per call). The tests of the entry point itself (test_cli.py) start real
    interpreters."""
    if "cli" not in _CLI or _CLI["cli"].proc.poll() is not None:
        _CLI["cli"] = Zygote(["services.cli", "services.platform", "services.api.main"], dict(os.environ))
        atexit.register(_CLI["cli"].close)
    with tempfile.TemporaryDirectory(prefix="lianxi-cli-") as tmp:
        out, err = Path(tmp) / "out", Path(tmp) / "err"
        err.touch()
        child = _CLI["cli"].spawn(["services.cli", *args], out, err, env=env, cwd=cwd)
        deadline = time.monotonic() + timeout
        while child.poll() is None:
            if time.monotonic() > deadline:
                child.send_signal(signal.SIGKILL)
                child.wait()
                raise subprocess.TimeoutExpired(["lianxi", *args], timeout)
            time.sleep(0.01)
        return subprocess.CompletedProcess(["lianxi", *args], child.returncode or 0, out.read_text("utf-8"),
                                           err.read_text("utf-8"))


if __name__ == "__main__":
    serve(sys.argv[1:])
