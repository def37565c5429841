"""An adapted run's expert (or dataset) and the target steps it cost, read from run folders alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sim2real.evaluation.provenance import expert_use
from sim2real.policies import read_run_info
from sim2real.presets import target_spec

TARGET = target_spec("heavy")


def run_folder(path: Path, **metadata: Any) -> Path:
    path.mkdir(parents=True)
    record = {"env": {"name": "inverted_pendulum"}, "algo": "ppo", "kind": "train", **metadata}
    (path / "metadata.json").write_text(json.dumps(record))
    (path / "model.zip").write_bytes(b"")
    return path


def transfer_run(path: Path, method: str, **settings: Any) -> Path:
    return run_folder(path, kind="transfer", method=method, budget=2000, target_steps_used=2000,
                      target=TARGET.to_dict(), settings=settings)


def test_expert_trained_on_the_target_costs_its_training_steps(tmp_path: Path) -> None:
    oracle = run_folder(tmp_path / "oracle", target=TARGET.to_dict(), timesteps=150_000, timesteps_done=151_552)
    bc = transfer_run(tmp_path / "bc", "bc", expert=str(oracle), dataset=None)
    use = expert_use(read_run_info(bc), TARGET)
    assert use.kind == "expert" and use.label == "oracle" and use.target_steps == 151_552 and not use.privileged
    assert use.note == "trained 151552 steps on the target"


def test_expert_trained_in_simulation_costs_no_target_steps(tmp_path: Path) -> None:
    source = run_folder(tmp_path / "dr", timesteps_done=100_000)
    use = expert_use(read_run_info(transfer_run(tmp_path / "bc", "bc", expert=str(source))), TARGET)
    assert use.target_steps == 0 and "trained in simulation (nominal dynamics)" in use.note
    other = run_folder(tmp_path / "other", target=target_spec("high_gravity").to_dict(), timesteps_done=100_000)
    use = expert_use(read_run_info(transfer_run(tmp_path / "bc2", "bc", expert=str(other))), TARGET)
    assert use.target_steps == 0 and "'high_gravity'" in use.note


def test_dataset_follows_its_sidecar_to_the_expert(tmp_path: Path) -> None:
    oracle = run_folder(tmp_path / "oracle", target=TARGET.to_dict(), timesteps_done=30_000)
    demos = tmp_path / "demos.npz"
    (tmp_path / "demos.json").write_text(json.dumps({"format": "sim2real-demonstrations",
                                                     "expert": {"run_dir": str(oracle)}}))
    use = expert_use(read_run_info(transfer_run(tmp_path / "bc", "bc", dataset=str(demos))), TARGET)
    assert use.kind == "dataset" and use.dataset == str(demos) and use.target_steps == 30_000
    assert use.note.startswith("recorded by 'oracle'")


def test_unknown_costs_are_none_with_the_reason(tmp_path: Path) -> None:
    missing = expert_use(read_run_info(transfer_run(tmp_path / "a", "bc", expert=str(tmp_path / "gone"))), TARGET)
    assert missing.target_steps is None and "cost unknown" in missing.note
    (tmp_path / "robot.json").write_text(json.dumps({"format": "sim2real-demonstrations"}))
    robot = expert_use(read_run_info(transfer_run(tmp_path / "b", "bc", dataset=str(tmp_path / "robot.npz"))), TARGET)
    assert robot.target_steps is None and "names no expert" in robot.note
    no_sidecar = expert_use(read_run_info(transfer_run(tmp_path / "c", "bc", dataset=str(tmp_path / "x.npz"))), TARGET)
    assert no_sidecar.target_steps is None and "missing or unreadable" in no_sidecar.note


def test_chained_and_scripted_experts(tmp_path: Path) -> None:
    oracle = run_folder(tmp_path / "oracle", target=TARGET.to_dict(), timesteps_done=10_000)
    dagger = transfer_run(tmp_path / "dagger", "dagger", expert=str(oracle))  # 2000 of its own
    student = expert_use(read_run_info(transfer_run(tmp_path / "bc", "bc", expert=str(dagger))), TARGET)
    assert student.target_steps == 12_000 and "plus its expert's 10000" in student.note
    lqr = run_folder(tmp_path / "lqr", kind="scripted", target=TARGET.to_dict())
    scripted = expert_use(read_run_info(transfer_run(tmp_path / "bc2", "bc", expert=str(lqr))), TARGET)
    assert scripted.target_steps == 0 and scripted.privileged


def test_expert_free_runs_have_none(tmp_path: Path) -> None:
    assert expert_use(read_run_info(transfer_run(tmp_path / "ft", "finetune", learning_rate=1e-4)), TARGET) is None
    assert expert_use(read_run_info(run_folder(tmp_path / "dr")), TARGET) is None
    # A method that needs an expert but names none is not silently expert-free.
    use = expert_use(read_run_info(transfer_run(tmp_path / "bc", "bc", expert=None, dataset=None)), TARGET)
    assert use is not None and use.target_steps is None
