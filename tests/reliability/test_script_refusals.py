"""Every script refuses bad input with one line ``error: ...``, exit code 2, and nothing written.

All cases run in one process (tests/reliability/driver.py calls each script's Hydra ``main`` in turn), so
some sixty command lines cost one interpreter start and one import of torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sim2real.presets import CONFIG_DIR
from sim2real.runs import LOCK_FILE
from tests.conftest import REPO


def _tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its content's digest (to prove nothing changed)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _damaged(run: Path, dest: Path, name: str, cut: int) -> Path:
    copy = Path(shutil.copytree(run, dest))
    data = bytearray((copy / name).read_bytes())
    if name.endswith(".zip"):
        data[len(data) // 2: len(data) // 2 + 64] = b"\0" * 64
    else:
        data = data[:cut]
    (copy / name).write_bytes(bytes(data))
    return copy


def _with_code_in_metadata(run: Path, dest: Path, marker: Path) -> Path:
    copy = Path(shutil.copytree(run, dest))
    metadata = json.loads((copy / "metadata.json").read_text())
    metadata["env"] |= {"id": None, "entry_point": "subprocess:run", "kwargs": {"args": ["touch", str(marker)]}}
    (copy / "metadata.json").write_text(json.dumps(metadata))
    return copy


@pytest.fixture(scope="module")
def folders(ppo_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shared run, damaged copies of it, and folders of other kinds."""
    root = tmp_path_factory.mktemp("refusals")
    demos = root / "demos"
    demos.mkdir()
    (demos / "demos.json").write_text(json.dumps({"format": "sim2real-demonstrations"}))
    (demos / "demos.npz").write_bytes(b"arrays")
    pipeline = root / "pipeline"
    pipeline.mkdir()
    (pipeline / "pipeline.json").write_text("{}")
    resumable = Path(shutil.copytree(ppo_run, root / "resumable"))  # with the config.yaml train.py writes
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        config = compose(config_name="train", overrides=["env=inverted_pendulum", "timesteps=12000"])
    (resumable / "config.yaml").write_text(OmegaConf.to_yaml(config))
    locked = root / "locked"
    locked.mkdir()  # a live process (this one) holds it
    (locked / LOCK_FILE).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    return {
        "root": root, "run": ppo_run, "resumable": resumable, "demos": demos, "pipeline": pipeline, "locked": locked,
        "bad_zip": _damaged(ppo_run, root / "bad_zip", "model.zip", 0),
        "bad_pkl": _damaged(ppo_run, root / "bad_pkl", "vecnormalize.pkl", -40),
        "bad_meta": _damaged(ppo_run, root / "bad_meta", "metadata.json", 100),
        "evil": _with_code_in_metadata(ppo_run, root / "evil", root / "CODE_RAN"),
    }


def cases(f: dict[str, Path]) -> list[tuple[str, list[str], str]]:
    """(script, overrides, expected message); each case gets a fresh output folder unless it names one."""
    run, tiny = f["run"], ["env=inverted_pendulum", "eval_episodes=0", "progress_bar=false"]
    train = [
        # existing work
        ([f"hydra.run.dir={run}"], "already holds a training run; give resume="),
        ([f"resume={f['pipeline']}"], "holds a pipeline run (made by scripts/pipeline.py), not a training run"),
        ([f"resume={f['demos']}"], "holds a demonstrations dataset"),
        ([f"resume={f['bad_zip']}"], "model.zip' is damaged"),
        ([f"resume={f['bad_meta']}"], "metadata.json' is damaged"),
        ([f"hydra.run.dir={f['locked']}"], f"is in use by process {os.getpid()}"),
        # settings silently ignored
        ([f"resume={f['resumable']}", "seed=5"], "seed=5 (the run has 0)"),
        ([f"resume={f['resumable']}", "env=hopper"], "env={'name': 'hopper'"),
        (["+timestep=2048"], "unknown keys ['timestep']; valid: algo, calibration, checkpoint_every"),
        (["progress_bar=maybe"], "progress_bar='maybe' must be true or false"),
        (["device=cuda:99"], "device='cuda:99' is not available here"),
        ([*tiny, "algo.hyperparams.learning_rate=-1"], "algo.hyperparams.learning_rate=-1 must be a number > 0"),
        ([*tiny, "algo.hyperparams.n_steps=0"], "algo.hyperparams.n_steps=0 must be an integer >= 1"),
        # tracebacks
        (["timesteps=-5"], "timesteps=-5 must be an integer >= 1"),
        (["timesteps=0"], "timesteps=0 must be an integer >= 1"),
        (["timesteps=nan"], "timesteps=nan must be an integer"),
        (["timesteps=abc"], "timesteps='abc' must be an integer"),
        (["seed=-1"], "seed=-1 must be an integer >= 0"),
        (["seed=abc"], "seed='abc' must be an integer >= 0"),
        (["algo.n_envs=0"], "n_envs=0 must be an integer >= 1"),
        (["checkpoint_every=-1"], "checkpoint_every=-1 must be an integer >= 0"),
        (["eval_episodes=-3"], "eval_episodes=-3 must be an integer >= 0"),
        (["eval_targets=[nonexistent]"], "unknown target 'nonexistent'"),
        (["+randomization.parameters.masses={dist:uniform,low:nan,high:2}"], "low=nan must be a finite number"),
        (["+randomization.parameters.dampings={dist:uniform,low:-1,high:2}"], "a damping must be >= 0"),
        (["+randomization.effects.obs_noise_std=inf"], "obs_noise_std=inf must be a number >= 0"),
        (["+randomization.effects.obs_noise_std=abc"], "obs_noise_std='abc' must be a number >= 0"),
        (["+randomization.parameters.torso_mas={value:1.0}"], "unknown parameter 'torso_mas'"),
        (["overwrite=yes"], "overwrite='yes' must be true or false"),
    ]
    source = [f"source={run}", "target=heavy", "budget=2000"]
    transfer = [
        ([*source, f"hydra.run.dir={run}"], "holds a training run (made by scripts/train.py), not a transfer run"),
        ([f"source={f['bad_zip']}", "target=heavy", "budget=2000"], "model.zip' is damaged"),
        ([f"source={f['bad_pkl']}", "target=heavy", "budget=2000"], "vecnormalize.pkl' is damaged"),
        ([f"source={f['bad_meta']}", "target=heavy", "budget=2000"], "metadata.json' is damaged"),
        ([*source, "seed=-1"], "seed=-1 must be an integer >= 0"),
        ([*source, "device=cuda:99"], "device='cuda:99' is not available here"),
        ([*source, "+foo=1"], "unknown keys ['foo']"),
        ([*source, "budget=abc"], "budget='abc' must be an integer"),
        ([f"source={f['evil']}", "target=heavy", "budget=2000"], "names entry_point 'subprocess:run': a run folder"),
    ]
    expert = [f"expert={run}"]
    demos = [
        ([*expert, "steps=-1"], "steps=-1 must be an integer >= 1"),
        ([*expert, "steps=0"], "steps=0 must be an integer >= 1"),
        ([*expert, "steps=abc"], "steps='abc' must be an integer >= 1"),
        ([*expert, "steps=nan"], "steps=nan must be an integer >= 1"),
        ([*expert, "steps=100", "seed=-1"], "seed=-1 must be an integer >= 0"),
        ([*expert, "steps=100", f"hydra.run.dir={run}"], "holds a training run (made by scripts/train.py), not a "
                                                            "demonstrations dataset"),
        ([*expert, "steps=100", f"output={f['demos'] / 'demos.npz'}"], "demos.npz' already exists; choose another"),
        ([*expert, "steps=100", f"hydra.run.dir={f['demos']}"], "already holds a demonstrations dataset"),
        ([f"expert={f['evil']}", "steps=100"], "names entry_point 'subprocess:run'"),
    ]
    export = [
        ([f"run={run}", "opset=99"], "opset=99 must be an integer in [13, "),
        ([f"run={run}", f"hydra.run.dir={run}", "overwrite=true"], "holds a training run (made by scripts/train.py), "
                                                                   "not a policy bundle"),
        ([f"run={f['evil']}"], "names entry_point 'subprocess:run'"),
        ([f"run={f['bad_zip']}"], "model.zip' is damaged"),
        ([f"run={run}", "+foo=1"], "unknown keys ['foo']"),
    ]
    policies = [f"policies=[{run}]", "target=heavy"]
    evaluate = [
        ([*policies, f"hydra.run.dir={run}"], "holds a training run (made by scripts/train.py), not an evaluation"),
        ([*policies, "+foo=1"], "unknown keys ['foo']; valid: baselines"),
        ([f"policies=[{f['evil']}]", "target=heavy"], "names entry_point 'subprocess:run'"),
        ([f"policies=[{f['bad_pkl']}]", "target=heavy"], "vecnormalize.pkl' is damaged"),
        ([*policies, "episodes=0"], "episodes=0 must be an integer >= 1"),
    ]
    pipeline = [
        ([f"hydra.run.dir={run}"], "holds a training run (made by scripts/train.py), not a pipeline run"),
        (["+foo=1"], "unknown keys ['foo']"),
        (["source.progress_bar=maybe"], "progress_bar='maybe' must be true or false"),
        (["+source.timestep=5"], "source: unknown keys ['timestep']"),
        (["env=inverted_pendulum", "algo.hyperparams.learning_rate=-1"], "learning_rate=-1 must be a number > 0"),
        ([f"source_run={f['evil']}"], "names entry_point 'subprocess:run'"),
    ]
    groups = {"train": train, "transfer": transfer, "collect_demos": demos, "export": export, "evaluate": evaluate,
              "pipeline": pipeline}
    return [(script, argv, message) for script, group in groups.items() for argv, message in group]


def test_every_script_refuses_bad_input_cleanly(folders: dict[str, Path]) -> None:
    out = folders["root"] / "out"
    given = cases(folders)
    command_lines = []
    for index, (script, argv, _) in enumerate(given):
        if not any(a.startswith(("hydra.run.dir=", "resume=")) for a in argv):
            argv = [*argv, f"hydra.run.dir={out / str(index)}"]
        command_lines.append([script, argv])
    before = {name: _tree(path) for name, path in folders.items() if name != "root"}
    done = subprocess.run([sys.executable, "-m", "tests.reliability.driver", json.dumps(command_lines)],
                          capture_output=True, text=True, cwd=folders["root"], timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    failures = []
    for (script, argv, message), result in zip(given, results):
        lines = result["stderr"].strip().splitlines()
        if result["code"] != 2 or len(lines) != 1 or not lines[0].startswith("error: ") or message not in lines[0]:
            failures.append(f"{script} {' '.join(argv)}: exit {result['code']}: {result['stderr'][-600:]}")
    assert not failures, "\n".join(failures)
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.iterdir())  # nothing written
    assert {name: _tree(path) for name, path in folders.items() if name != "root"} == before  # nothing changed
    assert not (folders["root"] / "outputs").exists() and not (folders["root"] / "CODE_RAN").exists()
    assert len(given) >= 60
