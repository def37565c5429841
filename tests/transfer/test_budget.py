"""The target budget, the counting wrapper, and the checks made before any transfer work."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from sim2real.presets import target_spec
from sim2real.transfer import (
    METHODS,
    BudgetExhausted,
    CountedEnv,
    TargetBudget,
    load_setup,
    prepare_transfer,
    run_transfer,
)


class StepCounter(gym.Env):
    """A one-number env that counts the steps it really took."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self) -> None:
        self.steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.steps += 1
        return np.full(1, self.steps, np.float32), 1.0, False, False, {}


def fake_run(folder: Path, env: str = "inverted_pendulum", complete: bool = True, model: bool = True) -> Path:
    """A run folder that passes the folder checks without training (load_setup loads no weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    metadata = {"kind": "train", "env": {"name": env}, "algo": "ppo", "normalize": False, "complete": complete,
                "randomization": {"name": "none", "parameters": {}, "effects": {}}}
    (folder / "metadata.json").write_text(json.dumps(metadata))
    if model:
        (folder / "model.zip").write_bytes(b"")
    return folder


def test_budget_charges_and_keeps_a_ledger() -> None:
    budget = TargetBudget(10)
    budget.charge(4, "rollouts")
    budget.charge(3, "evaluation")
    assert (budget.used, budget.remaining) == (7, 3)
    assert budget.summary() == {"budget": 10, "target_steps_used": 7, "ledger": {"rollouts": 4, "evaluation": 3}}
    assert budget.can_afford(3) and not budget.can_afford(4)


def test_budget_is_a_hard_cap_and_charges_nothing_when_refusing() -> None:
    budget = TargetBudget(5)
    budget.charge(5, "rollouts")
    with pytest.raises(BudgetExhausted, match="only 0 of 5 remain"):
        budget.charge(1, "rollouts")
    assert budget.used == 5
    with pytest.raises(ValueError, match="negative"):
        budget.charge(-1, "rollouts")


@pytest.mark.parametrize("limit", [0, -3, 2.5, True])
def test_budget_rejects_bad_limits(limit: object) -> None:
    with pytest.raises(ValueError, match=r"budget=.* must be an integer >= 1"):
        TargetBudget(limit)  # type: ignore[arg-type]


def test_counted_env_charges_every_step_and_refuses_before_moving() -> None:
    inner = StepCounter()
    budget = TargetBudget(3)
    env = CountedEnv(inner, budget, "demonstrations")
    env.reset(seed=0)
    for _ in range(3):
        env.step(np.zeros(1, np.float32))
    with pytest.raises(BudgetExhausted):
        env.step(np.zeros(1, np.float32))
    assert inner.steps == 3
    assert dict(budget.ledger) == {"demonstrations": 3}
    env.reset(seed=1)  # resets are free
    assert budget.used == 3


def test_load_setup_reads_the_source_run(tmp_path: Path) -> None:
    setup, source = load_setup(fake_run(tmp_path / "src"), target_spec("high_gravity"), 2000, seed=3)
    assert setup.env.name == "inverted_pendulum" and setup.env == source.env
    assert (setup.budget, setup.seed, setup.target.name) == (2000, 3, "high_gravity")
    assert source.algo == "ppo"


@pytest.mark.parametrize(
    ("make", "budget", "expect_env", "message"),
    [
        (lambda p: p / "missing", 2000, None, "does not exist"),
        (lambda p: p, 2000, None, "metadata.json is missing"),
        (lambda p: fake_run(p / "nomodel", model=False), 2000, None, "has no model.zip"),
        (lambda p: fake_run(p / "partial", complete=False), 2000, None, "incomplete"),
        (lambda p: fake_run(p / "src"), 2000, "hopper", "is for env 'inverted_pendulum', not 'hopper'"),
        (lambda p: fake_run(p / "src"), 0, None, "budget=0 must be an integer >= 1"),
        (lambda p: fake_run(p / "src"), 999, None, "less than one episode"),
    ],
)
def test_load_setup_rejects_bad_input(tmp_path: Path, make, budget: int, expect_env: str | None,  # type: ignore[no-untyped-def]
                                      message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_setup(make(tmp_path), target_spec("heavy"), budget, seed=0, expect_env=expect_env)


def test_prepare_transfer_names_the_valid_methods_and_settings(tmp_path: Path) -> None:
    source = fake_run(tmp_path / "src")
    with pytest.raises(ValueError, match="unknown transfer method 'nope'; known: .*finetune"):
        prepare_transfer(source, target_spec("heavy"), "nope", {}, 2000, 0)
    with pytest.raises(ValueError, match=r"method 'finetune': unknown keys \['lr'\]; valid: .*learning_rate"):
        prepare_transfer(source, target_spec("heavy"), "finetune", {"lr": 0.1}, 2000, 0)
    with pytest.raises(ValueError, match="method 'finetune': l2sp='big' must be a number >= 0"):
        prepare_transfer(source, target_spec("heavy"), "finetune", {"l2sp": "big"}, 2000, 0)


def test_run_transfer_refuses_to_write_into_the_source(tmp_path: Path) -> None:
    source = fake_run(tmp_path / "src")
    method, setup, info = prepare_transfer(source, target_spec("heavy"), "finetune", {}, 2000, 0)
    before = {p.name: p.read_bytes() for p in source.iterdir()}
    for run_dir in (source, source / "adapted"):
        with pytest.raises(ValueError, match="outside the source run folder"):
            run_transfer(method, setup, info, run_dir)
    assert {p.name: p.read_bytes() for p in source.iterdir()} == before


def test_methods_registry_holds_the_transfer_methods() -> None:
    assert {"finetune", "dann"} <= set(METHODS.names())
    mine = ("bc", "dagger", "dann", "finetune")
    assert {name for name in mine if METHODS.get(name).needs_expert} == {"bc", "dagger"}
    assert not any(METHODS.get(name).needs_dataset for name in mine)
