"""Smaller guarantees: the user's overrides win, workers die with their parent, absurd rewards are blow-ups,
a blown-up target is not called a no-op, an exported bundle keeps the user's files, CI and extras match."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from sim2real.cli import resume_dir_argv, user_algo_wins
from sim2real.envs.guard import PhysicsGuard
from sim2real.training.checks import check_hyperparams, require_device
from tests.conftest import REPO


def test_the_command_line_wins_over_the_envs_defaults() -> None:
    raw = {"env": {"name": "inverted_pendulum"},
           "algo": {"hyperparams": {"learning_rate": -1, "n_steps": 0, "batch_size": 64}, "n_envs": 1,
                    "env_overrides": {"inverted_pendulum": {"hyperparams": {"learning_rate": 2.2e-4, "n_steps": 32,
                                                                            "batch_size": 32}, "n_envs": 4}}}}
    user_algo_wins(raw, ["algo.hyperparams.learning_rate=-1", "++algo.n_envs=1", "seed=3"])
    assert raw["algo"]["env_overrides"]["inverted_pendulum"] == {"hyperparams": {"n_steps": 32, "batch_size": 32}}
    with pytest.raises(ValueError, match="learning_rate=-1 must be a number > 0"):
        check_hyperparams("ppo", raw["algo"]["hyperparams"], 1)


@pytest.mark.parametrize(("hyperparams", "message"), [
    ({"gamma": 1.5}, "gamma=1.5 must be a number in"),
    ({"batch_size": 1}, "batch_size=1 must be an integer >= 2"),
    ({"n_steps": 1}, "n_steps \\* n_envs >= 2"),
    ({"ent_coef": "auto"}, None),
    ({"train_freq": [1, "episode"], "gradient_steps": -1}, None),
])
def test_hyperparameter_checks(hyperparams: dict, message: str | None) -> None:
    if message is None:
        check_hyperparams("sac", hyperparams, 1)
        return
    with pytest.raises(ValueError, match=message):
        check_hyperparams("ppo", hyperparams, 1)


def test_device_must_exist() -> None:
    assert require_device("device", "cpu") == "cpu" and require_device("device", "auto") == "auto"
    with pytest.raises(ValueError, match="'tpu' is not a torch device"):
        require_device("device", "tpu")
    with pytest.raises(ValueError, match="is not available here"):
        require_device("device", "cuda:99")


def test_resume_uses_the_run_folder_as_hydras_output_folder() -> None:
    assert resume_dir_argv(["train.py", "resume=runs/a", "timesteps=5"]) == \
        ["train.py", "resume=runs/a", "timesteps=5", "hydra.run.dir=runs/a"]
    assert resume_dir_argv(["train.py", "resume=runs/a", "hydra.run.dir=x"])[-1] == "hydra.run.dir=x"
    assert resume_dir_argv(["train.py", "seed=1"]) == ["train.py", "seed=1"]


class _Reward(gym.RewardWrapper):
    def reward(self, reward: float) -> float:
        return -242_140.0


def test_a_huge_finite_reward_is_a_blowup() -> None:
    env = PhysicsGuard(_Reward(gym.make("InvertedPendulum-v5")))
    env.reset(seed=0)
    _, reward, _, truncated, info = env.step(np.zeros(1, np.float32))
    assert (reward, truncated, info.get("physics_unstable"), env.blowups) == (0.0, True, True, 1)


def test_similarity_reports_a_target_that_blows_up() -> None:
    from sim2real.evaluation.similarity import SimilaritySettings, domain_similarity
    from sim2real.randomization import DynamicsSpec

    explosive = DynamicsSpec.from_dict({"name": "explosive", "parameters": {"gains": {"op": "scale", "value": 1e6}}})
    rng = np.random.default_rng(0)
    result = domain_similarity(lambda _obs: rng.uniform(-3, 3, 1), "inverted_pendulum", None, explosive,
                               SimilaritySettings(episodes=3, max_steps=50, permutations=20))
    assert result.distinguishable and result.physics_blowups == 3
    assert "blow up in 3 of 3 episodes" in result.warning and "no-op" in result.warning  # "not a no-op"


WORKER_SCRIPT = textwrap.dedent("""
    import multiprocessing, os, sys, time
    from pathlib import Path
    from sim2real.processes import exit_with_parent

    def child(parent, ready):
        exit_with_parent(parent, period=0.1)  # what every evaluation worker starts with (parallel._init_worker)
        Path(ready).write_text("ready")
        time.sleep(60)

    if __name__ == "__main__":
        ready = Path(sys.argv[1])
        worker = multiprocessing.get_context("spawn").Process(target=child, args=(os.getpid(), str(ready)))
        worker.start()
        print(worker.pid, flush=True)
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os._exit(0)  # the parent dies without stopping its worker (as under kill -9)
""")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_evaluation_workers_die_with_their_parent(tmp_path: Path) -> None:
    script = tmp_path / "orphan.py"
    script.write_text(WORKER_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path / "ready")], stdout=subprocess.PIPE,
                              text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    worker = int(parent.stdout.readline())
    parent.wait(timeout=90)
    assert (tmp_path / "ready").exists()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stat = Path(f"/proc/{worker}/stat")
        if not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":  # gone, or a zombie
            return
        time.sleep(0.1)
    os.kill(worker, 9)
    pytest.fail("the evaluation worker outlived its parent by 10 s")


def test_replacing_a_bundle_keeps_the_users_files(tmp_path: Path) -> None:
    from sim2real.export.bundle import staged_folder

    final = tmp_path / "bundle"
    final.mkdir()
    (final / "bundle.json").write_text(json.dumps({"files": {"onnx": {"path": "policy.onnx"},
                                                             "onnx_data": {"path": "policy.onnx.data"}}}))
    for name in ("policy.onnx", "policy.onnx.data", "policy.pt"):
        (final / name).write_text("old")
    (final / "calibration_notes.txt").write_text("mine")
    with staged_folder(final) as stage:
        for name in ("bundle.json", "policy.onnx", "policy.pt"):
            (stage / name).write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["bundle.json", "calibration_notes.txt", "policy.onnx", "policy.pt"]
    assert (final / "calibration_notes.txt").read_text() == "mine" and (final / "policy.onnx").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_an_export_killed_while_swapping_leaves_the_old_bundle_recoverable(tmp_path: Path) -> None:
    from sim2real.export.bundle import check_output_dir, recover_interrupted_export

    def old_bundle(folder: Path) -> None:
        folder.mkdir()
        (folder / "bundle.json").write_text(json.dumps({"files": {"onnx": {"path": "policy.onnx"}}}))
        (folder / "policy.onnx").write_text("old")
        (folder / "notes.txt").write_text("mine")

    # killed between moving the old bundle aside and moving the new one in: the old one comes back whole
    final = tmp_path / "a" / "bundle"
    final.parent.mkdir()
    old_bundle(final.parent / ".bundle.x1x1x1x1.old")
    (final.parent / ".bundle.x2x2x2x2.tmp").mkdir()
    final.mkdir()  # an empty folder, as Hydra makes it
    recover_interrupted_export(final)
    assert sorted(p.name for p in final.parent.iterdir()) == ["bundle"]
    assert (final / "policy.onnx").read_text() == "old" and (final / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="overwrite"):
        check_output_dir(final, overwrite=False)  # a bundle is there again: replacing it needs overwrite
    # killed after the new bundle arrived, before the user's files were moved over
    final = tmp_path / "b" / "bundle"
    final.parent.mkdir()
    old_bundle(final.parent / ".bundle.y1y1y1y1.old")
    final.mkdir()
    (final / "bundle.json").write_text("{}")
    (final / "policy.onnx").write_text("new")
    recover_interrupted_export(final)
    assert sorted(p.name for p in final.parent.iterdir()) == ["bundle"]
    assert (final / "policy.onnx").read_text() == "new" and (final / "notes.txt").read_text() == "mine"
    # another bundle's folders beside it (bundle.v2, its own lock) are not touched; a folder holding only the
    # user's files is not taken for a new bundle
    final = tmp_path / "c" / "bundle"
    final.parent.mkdir()
    old_bundle(final.parent / ".bundle.z1z1z1z1.old")
    (final.parent / ".bundle.v2.a1b2c3d4.tmp").mkdir()
    old_bundle(final.parent / ".bundle.v2.e5f6g7h8.old")
    final.mkdir()
    (final / "todo.txt").write_text("also mine")
    recover_interrupted_export(final)
    assert sorted(p.name for p in final.parent.iterdir()) == [".bundle.v2.a1b2c3d4.tmp", ".bundle.v2.e5f6g7h8.old",
                                                              "bundle"]
    assert sorted(p.name for p in final.iterdir()) == ["bundle.json", "notes.txt", "policy.onnx", "todo.txt"]


def _gate_command() -> list[str]:
    workflow = (REPO / ".github" / "workflows" / "transfer-gate.yml").read_text()
    command = re.search(r"scripts/check_gap\.py (\S+)\s+(.*?)\n\s+- name", workflow, re.S)
    assert command, "the workflow has no check_gap.py step"
    return command.group(2).split()


def test_the_ci_gate_passes_the_readmes_default_run() -> None:
    """The workflow's thresholds against the README's seed-0 row of the gated method (the run the workflow repeats)."""
    args = _gate_command()
    lines = (REPO / "README.md").read_text().splitlines()
    policy = args[args.index("--policy") + 1]
    header = next(line for line in lines if line.startswith("| policy | role |"))
    row = next(line for line in lines if line.startswith(f"| {policy} | policy |"))
    cells = dict(zip((c.strip() for c in header.strip("|").split("|")), (c.strip() for c in row.strip("|").split("|"))))
    source, gap = float(cells["source return (95% CI)"].split()[0]), float(cells["gap (95% CI)"].split()[0])
    if "--max-gap-pct" in args:
        assert 100 * gap / source <= float(args[args.index("--max-gap-pct") + 1])
    assert float(cells["normalized score"]) >= float(args[args.index("--min-normalized-score") + 1])
    assert cells["negative transfer"] == "no" or "--forbid-negative-transfer" not in args


@pytest.mark.slow
def test_the_ci_gate_passes_on_the_default_pipeline(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "pipeline.py"), f"hydra.run.dir={tmp_path}"],
                         capture_output=True, text=True, cwd=REPO, timeout=3600)
    assert run.returncode == 0, run.stderr[-3000:]
    gate = subprocess.run([sys.executable, str(REPO / "scripts" / "check_gap.py"),
                           str(tmp_path / "report" / "report.json"), *_gate_command()],
                          capture_output=True, text=True, cwd=REPO)
    assert gate.returncode == 0, gate.stdout + gate.stderr


def test_the_cluster_extra_installs_the_ray_path_without_breaking_joblib() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    cluster = " ".join(extras["cluster"])
    assert "hydra-ray-launcher" in cluster and "hydra-submitit-launcher" in cluster and "ray[default]" in cluster
    assert "joblib<1.5" in cluster  # the Ray plugin needs cloudpickle<3; joblib >= 1.5 needs cloudpickle >= 3
