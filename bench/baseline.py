"""Today's code beside an older commit, on the same data, in the same run.

Issue 10's scale targets are ratios against commit 7cf4329 ("today's code" when they were
written). A ratio measured on this shared 2-core machine only means something when both sides
run back to back under the same load, so every scale benchmark does this:

    from baseline import baseline_tree, head_tree, ratio_line   # bench/ is sys.path[0]
    base, head = baseline_tree(), head_tree()           # checkout + venv on first use (~1 min)
    r_base = base.run(SCRIPT, "--cases", "50000")      # a snippet run by that tree's interpreter
    r_head = head.run(SCRIPT, "--cases", "50000")
    print(r_base.seconds / r_head.seconds, r_head.peak_mb)

``SCRIPT`` is a path to a Python file that drives the engine *through its public entry points*
(CLI functions, models/, operations/) and prints one JSON object on its last line of stdout; the
same file runs in both trees, so it may only use what both commits have (check with
``git show 7cf4329:path``), or branch on ``Tree.name`` passed as ``SHENBAO_BENCH_TREE``.

The baseline is a detached ``git worktree`` under ``bench/out/baseline-<commit>`` (ignored by git)
with its own ``.venv``; it is made once and reused (``SHENBAO_BENCH_BASELINE=DIR`` points at one
made elsewhere, so several checkouts share it). Peak memory is the child's own maximum RSS
(``os.wait4`` on that child, not the cumulative ``RUSAGE_CHILDREN``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
BASELINE_COMMIT = "7cf4329"


@dataclass
class Result:
    seconds: float  # wall time of the child, start to exit
    peak_mb: float  # the child's maximum resident set
    data: dict[str, Any] = field(default_factory=dict)  # the JSON its last stdout line printed
    stdout: str = ""


@dataclass
class Tree:
    name: str  # "7cf4329" or "HEAD"
    root: Path

    @property
    def python(self) -> Path:
        return self.root / ".venv" / "bin" / "python"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        # The child imports *this tree's* packages, never the other's.
        env["PYTHONPATH"] = str(self.root)
        env["SHENBAO_BENCH_TREE"] = self.name
        env.update(extra or {})
        return env

    def run(
        self, script: str | Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> Result:
        """Run ``script`` under this tree's interpreter; wall time, peak RSS, its JSON line."""
        cmd = [str(self.python), str(script), *args]
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env=self.env(env), cwd=str(cwd or self.root), stdout=subprocess.PIPE, text=True
        )
        # wait4 gives this child's own rusage (ru_maxrss in KiB on Linux), not the cumulative one.
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        stdout = proc.stdout.read() if proc.stdout else ""
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise RuntimeError(f"{self.name}: {' '.join(cmd)} exited {code}\n{stdout[-2000:]}")
        lines = [line for line in stdout.splitlines() if line.strip()]
        data: dict[str, Any] = {}
        if lines:
            try:
                data = json.loads(lines[-1])
            except json.JSONDecodeError:
                data = {}
        return Result(seconds=seconds, peak_mb=usage.ru_maxrss / 1024, data=data, stdout=stdout)


def head_tree() -> Tree:
    """The working tree this file is in, with its own .venv (``make`` made it)."""
    return Tree("HEAD", REPO)


def baseline_tree(commit: str = BASELINE_COMMIT, *, quiet: bool = False) -> Tree:
    """A detached worktree of ``commit`` with an installed .venv, made on first use."""
    root = Path(os.environ.get("SHENBAO_BENCH_BASELINE") or OUT / f"baseline-{commit}")
    if not (root / ".git").exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        _say(quiet, f"基线：检出 {commit} 到 {root} …")
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", "--force", str(root), commit],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    python = root / ".venv" / "bin" / "python"
    marker = root / ".venv" / ".installed"
    if not marker.exists():
        _say(quiet, f"基线：为 {commit} 安装虚拟环境（约 1 分钟）…")
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(root / ".venv")], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-e",
                f"{root}[dev]",
            ],
            check=True,
        )
        marker.touch()
    return Tree(commit, root)


def ratio_line(what: str, base: Result, head: Result) -> str:
    """One line a reader can take in: both figures and the ratio, base first."""
    speed = base.seconds / head.seconds if head.seconds else float("inf")
    return (
        f"{what}: {BASELINE_COMMIT} {base.seconds:.2f} s / {base.peak_mb:.0f} MB · "
        f"HEAD {head.seconds:.2f} s / {head.peak_mb:.0f} MB · {speed:.1f}× faster"
    )


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    tree = baseline_tree()
    print(f"baseline ready: {tree.root}")
