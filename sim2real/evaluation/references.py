"""Fixed (random, expert) reference returns per env, for scores that mean the same in every run.

The report's oracle-relative score moves whenever the oracle does (a longer-trained oracle lowers every
other policy's score). A reference-normalized score, ``100 (J - J_random) / (J_expert - J_random)``,
uses constants shipped here instead, so numbers can be compared across runs and, with care, with
published tables.

Where each pair comes from (named on every entry, see :attr:`ReferenceScores.source`):

* ODRL (Lyu et al., 2024, "ODRL: a benchmark for off-dynamics reinforcement learning"), ``envs/infos.py``,
  ``REF_MIN_SCORE`` / ``REF_MAX_SCORE``: one random return per env and one expert return per shifted env
  (friction or gravity scaled by 0.1, 0.5, 2 or 5). Used for targets that are exactly such a shift
  (``low_friction`` = friction x0.5, ``high_gravity`` = gravity x2).
* D4RL (Fu et al., 2020), ``d4rl/gym_mujoco/__init__.py``, ``*_RANDOM_SCORE`` / ``*_EXPERT_SCORE``: one
  pair per env on the nominal dynamics. Used for every other target of those envs.
* This project (``measured=True``): InvertedPendulum and InvertedDoublePendulum have no published pair.
  Their expert end is the env's largest possible return, a property of its reward: InvertedPendulum-v5
  pays 1 per step while the pole is up, for at most 1000 steps (1000); InvertedDoublePendulum-v5 pays
  ``10 - 0.01 x_tip^2 - (y_tip - 2)^2 - velocity penalty`` per step, and the tip is at most 1.2 high
  (two 0.6 poles), so at most ``10 - 0.64 = 9.36`` per step, 9360 over 1000 steps (trained policies
  reach 9359). Their random end is the mean return of uniform random actions over 100 episodes
  (episode seeds 0..99, one generator seeded 0; :func:`measure_random_return` repeats it).

How these protocols differ from this toolkit's, so the scores are for orientation, not a leaderboard
claim: both published tables were measured on gym's ``-v2``/``-v3`` MuJoCo envs (mujoco-py), not
Gymnasium's ``-v5`` (whose model files, contact settings and reset noise differ in places); their
experts are trained for 1M steps or more (D4RL's SAC expert; ODRL's SAC trained on the shifted env),
while this toolkit's budgets are tens of thousands of target steps; ODRL builds a shift by editing a copy
of the env's XML, while this toolkit scales the compiled model at reset (its ``low_friction`` scales every
geom's friction, the floor's included: MuJoCo takes the larger of two geoms' frictions, so scaling the
robot alone would be masked).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

ODRL = "ODRL (Lyu et al., 2024), envs/infos.py REF_MIN_SCORE / REF_MAX_SCORE"
D4RL = "D4RL (Fu et al., 2020), d4rl/gym_mujoco/__init__.py *_RANDOM_SCORE / *_EXPERT_SCORE"
MEASURED = "measured by this project (see sim2real/evaluation/references.py)"


@dataclass(frozen=True)
class ReferenceScores:
    """A (random, expert) reference return pair.

    Attributes:
        env: The toolkit's env name.
        random: Return counted as 0.
        expert: Return counted as 100.
        source: Where the pair comes from.
        measured: Measured by this project rather than published.
        shift: The published shift it belongs to (``friction x0.5``), or None for the nominal env's pair.
    """

    env: str
    random: float
    expert: float
    source: str
    measured: bool = False
    shift: str | None = None

    def normalize(self, value: float) -> float:
        """``100 (value - random) / (expert - random)``."""
        return 100.0 * (float(value) - self.random) / (self.expert - self.random)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


# ODRL's random return per env (REF_MIN_SCORE, the same for every shift of an env).
_ODRL_RANDOM = {"hopper": -26.3360015397715, "half_cheetah": -280.178953, "walker2d": 10.079455055289959,
                "ant": -325.6}
# ODRL's expert return per (env, shift kind, factor) (REF_MAX_SCORE of e.g. 'hopper-friction-0.5').
_ODRL_EXPERT: dict[tuple[str, str, float], float] = {
    **{("hopper", kind, f): 3234.3 for kind in ("friction", "gravity") for f in (0.1, 0.5, 2.0, 5.0)},
    ("walker2d", "friction", 0.1): 3360.181, ("walker2d", "friction", 0.5): 4229.348,
    ("walker2d", "friction", 2.0): 5180.044, ("walker2d", "friction", 5.0): 4988.835,
    ("walker2d", "gravity", 0.1): 2074.904, ("walker2d", "gravity", 0.5): 5194.713,
    ("walker2d", "gravity", 2.0): 5056.445, ("walker2d", "gravity", 5.0): 3665.385,
    ("half_cheetah", "friction", 0.1): 41696.546875, ("half_cheetah", "friction", 0.5): 7357.0712890625,
    ("half_cheetah", "friction", 2.0): 11255.9677734375, ("half_cheetah", "friction", 5.0): 10199.3271484375,
    ("half_cheetah", "gravity", 0.1): 2466.85, ("half_cheetah", "gravity", 0.5): 9509.15,
    ("half_cheetah", "gravity", 2.0): 9509.15, ("half_cheetah", "gravity", 5.0): 3756.24,
    ("ant", "friction", 0.1): 7938.962, ("ant", "friction", 0.5): 8301.338,
    ("ant", "friction", 2.0): 5167.376, ("ant", "friction", 5.0): 4545.021,
    ("ant", "gravity", 0.1): 2782.098, ("ant", "gravity", 0.5): 4317.065,
    ("ant", "gravity", 2.0): 6705.12, ("ant", "gravity", 5.0): 6226.89,
}
# Per-env pairs for any other target: D4RL's where published, this project's otherwise.
NOMINAL: dict[str, ReferenceScores] = {
    "hopper": ReferenceScores("hopper", -20.272305, 3234.3, D4RL),
    "half_cheetah": ReferenceScores("half_cheetah", -280.178953, 12135.0, D4RL),
    "walker2d": ReferenceScores("walker2d", 1.629008, 4592.3, D4RL),
    "ant": ReferenceScores("ant", -325.6, 3879.7, D4RL),
    "inverted_pendulum": ReferenceScores("inverted_pendulum", 5.23, 1000.0, MEASURED, measured=True),
    "inverted_double_pendulum": ReferenceScores("inverted_double_pendulum", 49.09, 9360.0, MEASURED, measured=True),
}
# The toolkit's parameter handles that correspond to ODRL's shift kinds.
_SHIFT_KINDS = {"frictions": "friction", "gravity": "gravity"}


def published_shift(target_spec: Mapping[str, Any] | None) -> tuple[str, float] | None:
    """``(kind, factor)`` if the target is exactly one of ODRL's shifts (friction or gravity scaled by a constant).

    Example:
        >>> published_shift({"parameters": {"gravity": {"op": "scale", "dist": "constant", "value": 2.0}}})
        ('gravity', 2.0)
        >>> published_shift({"parameters": {"masses": {"op": "scale", "dist": "constant", "value": 2.0}}}) is None
        True
    """
    spec = dict(target_spec or {})
    parameters = dict(spec.get("parameters") or {})
    if len(parameters) != 1 or spec.get("effects"):
        return None
    (handle, term), = parameters.items()
    if handle not in _SHIFT_KINDS or not isinstance(term, Mapping):
        return None
    if term.get("op") != "scale" or term.get("dist", "constant") != "constant":
        return None
    value = term.get("value")
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return _SHIFT_KINDS[handle], float(value)


def differs_from_registered(env: Any) -> str | None:
    """Why an env spec is not the registered robot its name says (None when it is): another model, other
    constructor arguments or another episode length change what a return means, so the published pair no
    longer applies. Observation history does not (the robot and its reward are the same)."""
    from sim2real.envs.registry import ENVS

    registered = ENVS.get(env.name) if env.name in ENVS else None
    if registered is None:
        return f"'{env.name}' is not a registered robot"
    for name in ("id", "entry_point", "kwargs"):
        if getattr(env, name) != getattr(registered, name):
            return f"its {name} ({getattr(env, name)!r}) is not the registered {env.name}'s ({getattr(registered, name)!r})"
    if env.max_episode_steps not in (None, registered.max_episode_steps):
        from sim2real.envs.registry import episode_limit

        limit = episode_limit(registered)
        if env.max_episode_steps != limit:
            return f"its episodes last {env.max_episode_steps} steps, not the registered {limit}"
    return None


def reference_scores(env: str, target_spec: Mapping[str, Any] | None = None) -> ReferenceScores | None:
    """The reference pair for the registered robot ``env`` on a target (None when the env has none; a robot
    changed from the registered one has none either: :func:`differs_from_registered`).

    ODRL's pair where the target is exactly one of its shifts, else the env's nominal pair (D4RL's or
    this project's).

    Example:
        >>> reference_scores("hopper", {"parameters": {"gravity": {"op": "scale", "value": 2.0}}}).expert
        3234.3
        >>> reference_scores("walker2d", {"parameters": {"frictions": {"op": "scale", "value": 0.5}}}).expert
        4229.348
        >>> reference_scores("reacher") is None
        True
    """
    shift = published_shift(target_spec)
    if shift is not None and (env, *shift) in _ODRL_EXPERT:
        kind, factor = shift
        return ReferenceScores(env, _ODRL_RANDOM[env], _ODRL_EXPERT[(env, kind, factor)], ODRL,
                               shift=f"{kind} x{factor:g}")
    return NOMINAL.get(env)


def measure_random_return(env: str, episodes: int = 100, seed: int = 0) -> float:
    """Mean return of uniform random actions on the nominal env (how the measured random ends were made)."""
    import gymnasium as gym

    from sim2real.envs.registry import make_base_env, resolve_env
    from sim2real.evaluation.parallel import RandomActor
    from sim2real.evaluation.rollout import rollout_returns

    probe = make_base_env(resolve_env(env))
    try:
        space = probe.action_space
    finally:
        probe.close()
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"env '{env}': a random reference needs a Box action space, got {space}")
    return float(rollout_returns(RandomActor(space, seed), env, episodes, seed).returns.mean())
