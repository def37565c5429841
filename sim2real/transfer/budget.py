"""The target budget: every target-env step any method takes is charged here, and the cap is hard."""

from __future__ import annotations

from collections import Counter
from typing import Any

import gymnasium as gym

from sim2real.validation import require_int


class BudgetExhausted(RuntimeError):  # noqa: N818 (public name)
    """Raised when a method tries to spend target steps beyond its budget."""


class TargetBudget:
    """A hard cap on target-environment steps, with a ledger of what they were spent on.

    Args:
        limit: Total target steps allowed (> 0).

    Example:
        >>> budget = TargetBudget(10)
        >>> budget.charge(4, "rollouts")
        >>> budget.used, budget.remaining, dict(budget.ledger)
        (4, 6, {'rollouts': 4})
    """

    def __init__(self, limit: int) -> None:
        self.limit: int = require_int("budget", limit, minimum=1)
        self.used = 0
        self.ledger: Counter[str] = Counter()
        self.physics_blowups = 0  # target episodes cut by the physics guard, counted by CountedEnv

    @property
    def remaining(self) -> int:
        """Steps still available."""
        return self.limit - self.used

    def can_afford(self, steps: int) -> bool:
        """Whether ``steps`` more steps fit in the budget."""
        return steps <= self.remaining

    def charge(self, steps: int, purpose: str) -> None:
        """Spends ``steps`` on ``purpose`` (``rollouts``, ``demonstrations``, ``evaluation``, ...).

        Raises:
            BudgetExhausted: if the budget cannot cover them (nothing is charged then).
        """
        if steps < 0:
            raise ValueError(f"cannot charge a negative number of steps ({steps})")
        if steps > self.remaining:
            raise BudgetExhausted(
                f"{purpose}: {steps} target steps requested but only {self.remaining} of {self.limit} remain"
            )
        self.used += steps
        self.ledger[purpose] += steps

    def summary(self) -> dict[str, Any]:
        """``{"budget", "target_steps_used", "ledger"}`` for metadata."""
        return {"budget": self.limit, "target_steps_used": self.used, "ledger": dict(self.ledger)}


class CountedEnv(gym.Wrapper):
    """Charges one target step to ``budget`` for every ``step`` (the one counting wrapper).

    A step the budget cannot cover raises :class:`BudgetExhausted` before the env moves. Steps the physics
    guard flags (``info["physics_unstable"]``) are counted in ``budget.physics_blowups``.
    """

    def __init__(self, env: gym.Env, budget: TargetBudget, purpose: str = "rollouts") -> None:
        super().__init__(env)
        self.budget = budget
        self.purpose = purpose

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.budget.charge(1, self.purpose)
        obs, reward, terminated, truncated, info = self.env.step(action)
        if info.get("physics_unstable"):
            self.budget.physics_blowups += 1
        return obs, reward, terminated, truncated, info
