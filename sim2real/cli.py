"""The edge every script shares: one error format, unknown settings refused, the user's overrides honoured.

A script's Hydra task hands its work to :func:`run_script`::

    @hydra.main(config_path="../configs", config_name="train", version_base=None)
    def main(cfg: DictConfig) -> None:
        run_script(train_command, cfg)

Bad input (a ``ValueError``: every check of :mod:`sim2real.validation`, :class:`~sim2real.runs.RunFolderError`,
``BundleError``) ends the script with one line ``error: ...`` on stderr and exit code 2, and an output folder
that Hydra created but nothing was written into is removed again. An interruption (Ctrl-C, or a SIGTERM where
the script turns it into one) ends it with one line ``interrupted: ...`` and exit code 130, after whatever the
work saves on its way out (a training's checkpoint).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from omegaconf import DictConfig, OmegaConf

from sim2real.runs import CONFIG_FILE, OVERRIDES_FILE, previous_record, write_text_atomic
from sim2real.validation import require_known_keys

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def run_script(command: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Runs a script's ``command`` on its composed config; bad input ends it with ``error: ...`` and exit code 2,
    an interruption with ``interrupted: ...`` and exit code 130, instead of a traceback (unknown top-level
    settings are refused first)."""
    try:
        refuse_unknown_keys(cfg)
        return command(cfg)
    except ValueError as err:
        _remove_empty_output_dir()
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt as err:
        _remove_empty_output_dir()
        exit_interrupted(err)


def exit_interrupted(err: KeyboardInterrupt, advice: str = "") -> NoReturn:
    """Ends the process after an interruption with one line ``interrupted: <signal or Ctrl-C>[; advice]`` on
    stderr and exit code 130."""
    print(f"interrupted: {err or 'Ctrl-C'}" + (f"; {advice}" if advice else ""), file=sys.stderr, flush=True)
    sys.exit(EXIT_INTERRUPTED)


def _remove_empty_output_dir() -> None:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    folder = Path(HydraConfig.get().runtime.output_dir)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()  # Hydra made it before the task ran; a refused command leaves nothing behind


def user_overrides() -> list[str]:
    """The overrides given on the command line (``key=value``, ``+key=value``, ``group=option``)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def override_keys(overrides: Iterable[str]) -> list[str]:
    """The dotted keys (or group names) the overrides set, without ``+``/``++``/``~`` prefixes."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [o.key_or_group for o in parsed]


def refuse_unknown_keys(cfg: DictConfig) -> None:
    """Refuses top-level settings the script's config does not declare (``+timestep=2048``, ``+foo=1``).

    Hydra itself refuses ``timestep=2048``; a ``+`` adds any key, so the composed config is compared with the
    script's own config composed without the user's overrides.

    Raises:
        ValueError: ``settings of configs/train.yaml: unknown keys ['timestep']; valid: ...``.
    """
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    name = HydraConfig.get().job.config_name
    declared = compose(config_name=name)
    require_known_keys(f"settings of configs/{name}.yaml", cfg.keys(), declared.keys())


def user_algo_wins(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Drops from ``algo.env_overrides[<env>]`` every setting the user gave as ``algo.<...>=``.

    An env's ``env_overrides`` block holds defaults tuned for that env (they beat the algorithm's generic
    defaults); a value typed on the command line beats both.

    Example:
        >>> raw = {"env": {"name": "hopper"}, "algo": {"hyperparams": {"n_steps": 0},
        ...        "env_overrides": {"hopper": {"hyperparams": {"n_steps": 512, "batch_size": 32}}}}}
        >>> user_algo_wins(raw, ["algo.hyperparams.n_steps=0"])["algo"]["env_overrides"]
        {'hopper': {'hyperparams': {'batch_size': 32}}}
    """
    env_name = (raw.get("env") or {}).get("name")
    block = ((raw.get("algo") or {}).get("env_overrides") or {}).get(env_name)
    if not isinstance(block, dict):
        return raw
    for key in override_keys(overrides):
        parts = key.split(".")
        if parts[0] != "algo" or len(parts) < 2 or parts[1] == "env_overrides":
            continue
        _drop_path(block, parts[1:])
    return raw


def _drop_path(tree: dict[str, Any], path: list[str]) -> None:
    node: Any = tree
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


def conflicts_with_saved(cfg: Mapping[str, Any], saved: Mapping[str, Any], overrides: Iterable[str],
                         allowed: Iterable[str]) -> list[str]:
    """The user's overrides that would change a saved run's settings (``seed=5`` against a run of seed 0).

    Args:
        cfg: The config as composed with the user's overrides (a plain dict).
        saved: The run's saved config (a plain dict).
        overrides: The command line's overrides.
        allowed: Top-level keys that may change (``timesteps`` to extend a run, ``progress_bar``, ...).
    """
    allowed = set(allowed)
    conflicts = []
    for key in override_keys(overrides):
        if key.split(".")[0] in allowed or key.startswith("hydra"):
            continue
        given, before = _select(cfg, key), _select(saved, key)
        if given != before:
            conflicts.append(f"{key}={given!r} (the run has {before!r})")
    return conflicts


def _select(tree: Mapping[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def write_run_config(run_dir: Path, raw: Mapping[str, Any], overrides: Iterable[str] | None = None) -> None:
    """Writes the resolved config (``config.yaml``) and the command line's overrides (``overrides.yaml``).

    A run continued with other settings (a resumed training given more steps, a pipeline rerun with a changed
    stage) keeps the record of the earlier ones: the old files are copied to ``config.previous-<k>.yaml``
    and ``overrides.previous-<k>.yaml`` (k = 1, 2, ...) before the new ones replace them.
    """
    files = {CONFIG_FILE: OmegaConf.to_yaml(OmegaConf.create(dict(raw)))}
    if overrides is not None:
        files[OVERRIDES_FILE] = OmegaConf.to_yaml(OmegaConf.create(list(overrides)))
    old = {name: (run_dir / name).read_text() for name in files if (run_dir / name).is_file()}
    if any(old.get(name, text) != text for name, text in files.items()):
        numbers = (path.suffixes[-2].removeprefix(".previous-") for name in (CONFIG_FILE, OVERRIDES_FILE)
                   for path in run_dir.glob(previous_record(name, "[0-9]*")))
        k = 1 + max((int(n) for n in numbers if n.isdigit()), default=0)  # never reuses a number, even if deleted
        for name, text in old.items():
            write_text_atomic(run_dir / previous_record(name, k), text)
    for name, text in files.items():
        write_text_atomic(run_dir / name, text)


def resume_dir_argv(argv: list[str], key: str = "resume") -> list[str]:
    """Adds ``hydra.run.dir=DIR`` for ``resume=DIR``, so a resumed run creates no fresh timestamped folder."""
    given = [arg.split("=", 1)[1] for arg in argv[1:] if arg.startswith(f"{key}=")]
    if not given or given[-1] in ("", "null") or any(arg.startswith("hydra.run.dir=") for arg in argv[1:]) \
            or "-m" in argv or "--multirun" in argv:
        return argv
    return [*argv, f"hydra.run.dir={given[-1]}"]


def output_dir() -> Path:
    """The run folder Hydra chose (``hydra.run.dir``)."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def trusted_code(raw: Mapping[str, Any]) -> None:
    """Trusts the entry points the user lists in ``trusted_entry_points`` (run records may then name them)."""
    from sim2real.envs.registry import trust_entry_points

    entries = raw.get("trusted_entry_points") or []
    if not isinstance(entries, list):
        raise ValueError(f"trusted_entry_points={entries!r} must be a list of 'module:ClassName' entries")
    trust_entry_points(entries)
