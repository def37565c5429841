"""Runs scripts' ``main`` on many command lines in one process (a process start each would cost seconds).

    python -m tests.reliability.driver '[["train", ["timesteps=0", "hydra.run.dir=/tmp/x"]], ...]'

Prints one JSON line: for each command line, the exit code (``"traceback"`` for an uncaught exception) and
what it wrote to stderr and stdout.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(name: str) -> ModuleType:
    """Imports ``scripts/<name>.py`` without running it."""
    path = SCRIPTS / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    module.main.__wrapped__.__module__ = "__main__"  # Hydra then finds the configs relative to the script file
    return module


def run_case(module: ModuleType, argv: list[str]) -> dict[str, Any]:
    """One command line, as ``python scripts/<name>.py ARGV`` would run it."""
    from hydra.core.global_hydra import GlobalHydra

    sys.argv = [module.__file__, *argv]
    for rewrite in ("method_alias", "resume_dir_argv"):
        if hasattr(module, rewrite):
            sys.argv = getattr(module, rewrite)(sys.argv)
    err, out = io.StringIO(), io.StringIO()
    code: Any = 0
    start = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            module.main()
        except SystemExit as exit_:
            code = exit_.code
        except BaseException as exc:  # noqa: BLE001 (a traceback is what the caller must see)
            code = "traceback"
            err.write(f"{type(exc).__name__}: {exc}")
    GlobalHydra.instance().clear()
    return {"code": code, "stderr": err.getvalue(), "stdout": out.getvalue()[-2000:],
            "seconds": round(time.perf_counter() - start, 3)}


def main(cases: list[tuple[str, list[str]]]) -> list[dict[str, Any]]:
    """Runs every ``(script name, argv)`` case in order."""
    modules: dict[str, ModuleType] = {}
    results = []
    for name, argv in cases:
        module = modules.setdefault(name, load_script(name))
        results.append({"script": name, "argv": argv, **run_case(module, argv)})
    return results


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    print(json.dumps(main(json.loads(sys.argv[1]))))
