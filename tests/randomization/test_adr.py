"""Automatic domain randomization: the range-update rule, the sampling wrapper, the spec's checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from stable_baselines3.common.vec_env import SubprocVecEnv

from sim2real.envs import ENVS
from sim2real.presets import load_preset
from sim2real.randomization import DynamicsSpec, make_env, validate_dynamics
from sim2real.randomization.adr import HIGH, LOW, AdrDimension, AdrSpec, AdrState
from sim2real.randomization.effects import ActionLatency
from sim2real.randomization.wrapper import AdaptiveRandomization, EpisodeCut


def adr_spec(**dimensions: dict) -> DynamicsSpec:
    dims = dimensions or {"masses": {"init": [1.0, 1.0], "limits": [0.5, 2.0], "step": 0.1}}
    return DynamicsSpec.from_dict({"name": "adr", "adr": {"dimensions": dims, "thresholds": [100.0, 500.0],
                                                          "buffer_size": 2}})


def state(step: float = 0.1, init=(1.0, 1.0), limits=(0.5, 2.0), target: str = "masses") -> AdrState:
    spec = AdrSpec((AdrDimension(target, init=init, limits=limits, step=step),), thresholds=(100.0, 500.0), buffer_size=2)
    return AdrState(spec, env_name="inverted_pendulum")


def test_a_bound_moves_out_when_its_buffer_passes_the_upper_threshold() -> None:
    adr = state()
    assert adr.record(0, HIGH, 600.0, timesteps=5) is False  # buffer not full yet
    assert adr.record(0, HIGH, 400.0, timesteps=9) is True  # mean 500 >= 500: the high bound moves out
    assert adr.high.tolist() == [1.1] and adr.low.tolist() == [1.0]
    assert adr.record(0, LOW, 500.0, timesteps=12) is False
    assert adr.record(0, LOW, 700.0, timesteps=20) is True
    assert adr.low[0] == pytest.approx(1.0 / 1.1)
    assert [entry["timesteps"] for entry in adr.trajectory] == [0, 9, 20]


def test_a_return_played_at_a_bound_that_has_since_moved_is_dropped() -> None:
    """Episodes still running when their bound moves (other envs; one reset in the step that moved it) judged
    the old bound: a second widening must rest on returns at the widened bound only."""
    adr = state()
    assert adr.record(0, HIGH, 600.0, 5, value=1.0) is False
    assert adr.record(0, HIGH, 600.0, 9, value=1.0) is True and adr.high.tolist() == [1.1]
    assert adr.record(0, HIGH, 600.0, 10, value=1.0) is False and adr.stale == 1  # played at 1.0, not 1.1
    assert adr.buffers[0][1] == []
    assert adr.record(0, HIGH, 600.0, 11, value=1.1) is False and adr.buffers[0][1] == [600.0]
    assert adr.record(0, HIGH, 600.0, 12, value=1.1) is True and adr.high[0] == pytest.approx(1.21)
    resumed = state()
    resumed.load_dict(adr.to_dict())
    assert resumed.stale == 1


def test_a_bound_moves_in_below_the_lower_threshold_and_stays_between() -> None:
    adr = state()
    for t in range(4):
        adr.record(0, LOW, 900.0, t)  # two full buffers passing: low 1 -> 1/1.1 -> 1/1.21
    assert adr.low[0] == pytest.approx(1 / 1.21)
    adr.record(0, LOW, 50.0, 5)
    adr.record(0, LOW, 60.0, 6)  # mean 55 < 100: narrow
    assert adr.low[0] == pytest.approx(1 / 1.1)
    adr.record(0, HIGH, 200.0, 7)
    adr.record(0, HIGH, 300.0, 8)  # mean 250: between the thresholds, no change
    assert adr.high[0] == 1.0 and len(adr.trajectory) == 4
    assert all(not buffer for sides in adr.buffers for buffer in sides)  # every full buffer was emptied
    assert adr.performance == [[55.0, 250.0]]  # the last full buffer's mean at each bound
    assert adr.decisions == [[[1, 0, 2], [0, 1, 0]]]  # [in, nowhere, out] per bound


def test_ranges_stay_within_limits_and_never_narrow_past_where_they_started() -> None:
    adr = state(step=1.0)
    for t in range(10):
        adr.record(0, HIGH, 1000.0, t)
        adr.record(0, LOW, 1000.0, t)
    assert adr.low[0] == 0.5 and adr.high[0] == 2.0  # clipped at the limits
    for t in range(20):
        adr.record(0, LOW, 0.0, t)
        adr.record(0, HIGH, 0.0, t)
    assert adr.low[0] == adr.high[0] == 1.0  # narrowed back to the starting range (nominal), not past it
    # 5 full buffers out (one move to the limit, 4 clipped), 10 in (one move back, 9 clipped): clipped go nowhere
    assert adr.decisions[0][HIGH] == [1, 13, 1]
    shifted = state(init=(0.8, 1.5))
    for t in range(20):
        shifted.record(0, LOW, 0.0, t)
    assert shifted.low[0] == 0.8  # a failing low bound never moves inside the starting range


def test_latency_moves_by_whole_steps() -> None:
    adr = state(step=1, init=(0, 0), limits=(0, 3), target="action_latency")
    for t in range(4):
        adr.record(0, HIGH, 900.0, t)
    assert adr.high.tolist() == [2.0]


def test_state_round_trips_through_its_dict() -> None:
    adr = state()
    adr.record(0, HIGH, 900.0, 1)
    adr.record(0, HIGH, 900.0, 2)
    adr.record(0, LOW, 900.0, 3)
    restored = state()
    restored.load_dict(adr.to_dict())
    assert restored.to_dict() == adr.to_dict()
    older = {k: v for k, v in adr.to_dict().items() if k not in ("performance", "decisions")}
    resumed = state()
    resumed.record(0, HIGH, 900.0, 1)  # counters of its own, which an older state must not leave behind
    resumed.load_dict(older)  # a checkpoint saved before these were recorded still resumes
    assert resumed.ranges() == adr.ranges() and resumed.performance == [[None, None]]
    assert resumed.decisions == [[[0, 0, 0], [0, 0, 0]]]


def test_wrapper_starts_at_nominal_and_samples_within_the_given_ranges() -> None:
    env = AdaptiveRandomization(make_env("inverted_pendulum"), adr_spec())
    nominal = np.array(list(env.nominal_dict().values()))
    _, info = env.reset(seed=0)
    assert np.allclose(list(info["dynamics"].values()), nominal)
    env.set_adr_ranges([0.6], [1.8])
    masses = env.parameters.select("masses")
    for seed in range(30):
        env.reset(seed=seed)
        factors = env.values[masses] / env.parameters.nominal[masses]
        assert np.all((factors >= 0.6 - 1e-12) & (factors <= 1.8 + 1e-12))
        if env.boundary is not None:  # a boundary evaluation pins every member of the group at the bound
            assert np.allclose(factors, (0.6, 1.8)[env.boundary[1]]) and env.boundary[2] == (0.6, 1.8)[env.boundary[1]]


@pytest.mark.parametrize("others", ["sampled", "nominal"])
def test_a_boundary_evaluation_samples_the_other_dimensions_or_holds_them_at_nominal(others: str) -> None:
    spec = adr_spec(masses={"init": [1.0, 1.0], "limits": [0.5, 2.0]}, gains={"init": [1.0, 1.0], "limits": [0.5, 2.0]},
                    action_latency={"init": [0, 0], "limits": [0, 3], "step": 1})
    spec = dataclasses.replace(spec, adr=dataclasses.replace(spec.adr, boundary_others=others))
    env = AdaptiveRandomization(make_env("inverted_pendulum"), spec)
    env.set_adr_ranges([0.6, 0.7, 1], [1.8, 1.5, 2])  # a sampled latency is never the nominal 0
    groups = [env.parameters.select("masses"), env.parameters.select("gains")]
    off_nominal = []
    for seed in range(60):
        env.reset(seed=seed)
        if env.boundary is None:
            continue
        pinned, side, value = env.boundary
        factors = [env.values[g] / env.parameters.nominal[g] for g in groups] + [np.array([env.latency])]
        assert np.allclose(factors[pinned], value)
        off_nominal += [not np.allclose(f, 0.0 if i == 2 else 1.0) for i, f in enumerate(factors) if i != pinned]
    assert len(off_nominal) >= 40  # ~30 boundary episodes, two other dimensions each
    assert all(off_nominal) if others == "sampled" else not any(off_nominal)


def test_boundary_evaluations_come_at_the_configured_rate_and_are_reported_on_every_step() -> None:
    env = make_env("inverted_pendulum", randomization=adr_spec())
    env.get_wrapper_attr("set_adr_ranges")([1.0], [1.5])  # what the training loop does first
    boundaries = 0
    for seed in range(200):
        env.reset(seed=seed)
        terminated = truncated = False
        tagged = []
        while not (terminated or truncated):
            _, _, terminated, truncated, info = env.step(np.array([1.0]))  # falls within a few steps
            tagged.append("adr_boundary" in info)
        assert all(tagged) or not any(tagged)  # a time limit outside the wrapper may end the episode on any step
        boundaries += tagged[-1]
    assert 70 <= boundaries <= 130  # boundary_probability 0.5 of 200 episodes


def test_a_cut_spares_boundary_evaluations_only_when_asked() -> None:
    """A 5-step cut around an ADR env whose masses sit still: every ordinary episode is truncated at step 5; with
    ``spare_boundaries`` a boundary evaluation plays past the cut to the pendulum's fall or the robot's end."""
    spec = adr_spec(masses={"init": [1.0, 1.0], "limits": [0.5, 2.0]})
    for spare in (False, True):
        env = EpisodeCut(make_env("inverted_pendulum", randomization=spec), steps=5, spare_boundaries=spare)
        env.get_wrapper_attr("set_adr_ranges")([1.0], [1.0])  # training: boundary evaluations on
        lengths = {False: [], True: []}
        for seed in range(40):
            env.reset(seed=seed)
            steps, done = 0, False
            while not done:
                _, _, terminated, truncated, info = env.step(np.zeros(1))  # a still pendulum stands a while
                steps, done = steps + 1, terminated or truncated
            lengths["adr_boundary" in info].append((steps, truncated))
        assert lengths[False] and lengths[True]
        assert all(entry == (5, True) for entry in lengths[False])  # ordinary episodes: always cut
        if spare:
            assert all(steps > 5 for steps, _ in lengths[True])
        else:
            assert all(entry == (5, True) for entry in lengths[True])


def test_nominal_probability_holds_that_share_of_the_other_training_episodes_at_nominal() -> None:
    spec = adr_spec(masses={"init": [0.5, 2.0], "limits": [0.25, 4.0]},
                    action_latency={"init": [0, 2], "limits": [0, 3], "step": 1})
    spec = dataclasses.replace(spec, adr=dataclasses.replace(spec.adr, nominal_probability=0.4))
    env = AdaptiveRandomization(make_env("inverted_pendulum"), spec)
    masses = env.parameters.select("masses")
    env.set_adr_ranges([0.5, 0], [2.0, 2])  # training: boundary evaluations on
    kinds = []
    env.reset(seed=0)
    for _ in range(1000):
        env.reset()
        at_nominal = np.array_equal(env.values, env.parameters.nominal) and env.latency == 0
        kinds.append("boundary" if env.boundary is not None else "nominal" if at_nominal else "sampled")
        if kinds[-1] == "sampled":  # drawn from the ranges (continuous masses never land on nominal exactly)
            factors = env.values[masses] / env.parameters.nominal[masses]
            assert np.all((factors >= 0.5) & (factors <= 2.0)) and env.latency in (0, 1, 2)
    others = len(kinds) - kinds.count("boundary")
    assert 430 <= kinds.count("boundary") <= 570  # boundary_probability 0.5
    assert kinds.count("nominal") / others == pytest.approx(0.4, abs=0.07)  # ~500 others: std ~0.022
    env.set_adr_ranges([0.5, 0], [2.0, 2], boundaries=False)  # outside training: the ranges alone
    for seed in range(50):
        env.reset(seed=seed)
        assert env.boundary is None and not np.array_equal(env.values, env.parameters.nominal)


def test_outside_training_the_ranges_are_sampled_uniformly_without_boundary_evaluations() -> None:
    env = AdaptiveRandomization(make_env("inverted_pendulum"), adr_spec(masses={"init": [0.5, 2.0], "limits": [0.5, 2.0]}))
    masses = env.parameters.select("masses")
    factors = []
    for seed in range(50):
        env.reset(seed=seed)
        assert env.boundary is None
        factors.append(env.values[masses] / env.parameters.nominal[masses])
    assert not np.any(np.isclose(np.concatenate(factors), 0.5) | np.isclose(np.concatenate(factors), 2.0))


@pytest.mark.parametrize(("sampling", "share_below_nominal"), [("uniform", 1 / 3), ("log_uniform", 1 / 2)])
def test_sampling_inside_a_range_is_uniform_in_the_factor_or_in_its_log(sampling: str, share_below_nominal: float) -> None:
    spec = adr_spec(masses={"init": [0.5, 2.0], "limits": [0.25, 4.0]})
    spec = dataclasses.replace(spec, adr=dataclasses.replace(spec.adr, sampling=sampling))
    env = AdaptiveRandomization(make_env("inverted_pendulum"), spec)
    masses = env.parameters.select("masses")
    env.reset(seed=0)
    factors = []
    for _ in range(400):
        env.reset()
        factors.append(env.values[masses] / env.parameters.nominal[masses])
    factors = np.concatenate(factors)
    assert factors.min() >= 0.5 and factors.max() <= 2.0
    assert np.mean(factors < 1.0) == pytest.approx(share_below_nominal, abs=0.05)  # 800 draws: std ~0.017


def test_log_uniform_sampling_of_a_collapsed_range_gives_its_value() -> None:
    spec = adr_spec(masses={"init": [3.0, 3.0], "limits": [0.25, 4.0]})
    spec = dataclasses.replace(spec, adr=dataclasses.replace(spec.adr, sampling="log_uniform"))
    env = AdaptiveRandomization(make_env("inverted_pendulum"), spec)
    masses = env.parameters.select("masses")
    env.reset(seed=0)
    for _ in range(20):
        env.reset()
        assert np.array_equal(env.values[masses], env.parameters.nominal[masses] * 3.0)  # exp(log 3) is not 3


def test_same_seed_same_samples() -> None:
    def samples(seed: int) -> list[float]:
        env = AdaptiveRandomization(make_env("inverted_pendulum"), adr_spec())
        env.set_adr_ranges([0.5], [2.0])
        out = []
        for k in range(5):
            _, info = env.reset(seed=seed + k)
            out.append(info["dynamics"]["pole_mass"])
        return out

    assert samples(0) == samples(0)
    assert samples(0) != samples(10)


def test_latency_dimension_sets_the_episodes_action_latency() -> None:
    spec = adr_spec(action_latency={"init": [0, 0], "limits": [0, 3], "step": 1})
    env = make_env("inverted_pendulum", randomization=spec)
    latency = env
    while not isinstance(latency, ActionLatency):
        latency = latency.env
    env.get_wrapper_attr("set_adr_ranges")([2.0], [2.0])
    _, info = env.reset(seed=0)
    assert info["adr_latency"] == 2 and latency.delay == 2


def test_subprocess_envs_receive_new_ranges() -> None:
    spec = adr_spec()
    venv = SubprocVecEnv([lambda: make_env("inverted_pendulum", randomization=spec)] * 2)
    try:
        venv.env_method("set_adr_ranges", [2.0], [2.0])
        venv.reset()
        masses = [info["dynamics"]["pole_mass"] for info in venv.reset_infos]
        nominal = venv.env_method("nominal_dict", indices=[0])[0]["pole_mass"]
        assert masses == pytest.approx([2.0 * nominal] * 2)
    finally:
        venv.close()


def test_the_preset_parses_and_validates_on_every_robot() -> None:
    spec = DynamicsSpec.from_dict(load_preset("randomization", "adr"))
    assert [d.target for d in spec.adr.dimensions] == ["masses", "frictions", "gains", "gravity", "action_latency"]
    assert (spec.effects.action_latency, spec.effects.action_latency_max) == (0, 3)
    assert DynamicsSpec.from_dict(spec.to_dict()) == spec
    for env in sorted(ENVS):
        validate_dynamics(env, spec)
        assert spec.adr.thresholds_for(env) != spec.adr.thresholds  # each robot has its own thresholds


@pytest.mark.parametrize(
    ("adr", "message"),
    [
        ({"dimensions": {"masses": {"step": 0.0}}}, "step=0.0 must be a number > 0"),
        ({"dimensions": {"masses": {"step": -0.1}}}, "step=-0.1 must be a number > 0"),
        ({"dimensions": {"masses": {}}, "thresholds": [900, 100]}, "adr.thresholds=[900.0, 100.0]: the lower threshold"),
        ({"dimensions": {"masses": {}}, "env_thresholds": {"hopper": [5, 5]}}, "adr.env_thresholds.hopper=[5.0, 5.0]"),
        ({"dimensions": {"masses": {"init": [0.4, 1.0], "limits": [0.5, 2.0]}}}, "need limits[0] <= init[0]"),
        ({"dimensions": {"action_latency": {"init": [0, 1.5], "limits": [0, 3]}}}, "must be whole numbers"),
        ({"dimensions": {}}, "give at least one dimension"),
        ({"dimensions": {"masses": {"stepp": 1}}}, "unknown keys ['stepp']"),
        ({"dimensions": {"masses": {}}, "buffer_size": 0}, "adr.buffer_size=0 must be an integer >= 1"),
        ({"dimensions": {"masses": {}}, "sampling": "gaussian"}, "adr.sampling='gaussian': choose one of"),
        ({"dimensions": {"masses": {}}, "boundary_others": "mean"}, "adr.boundary_others='mean': choose one of"),
        ({"dimensions": {"masses": {"init": [1.2, 1.5], "limits": [0.5, 2.0]}}, "boundary_others": "nominal"},
         "init=[1.2, 1.5] leaves out the nominal value 1"),
        ({"dimensions": {"masses": {}}, "nominal_probability": 1.0}, "adr.nominal_probability=1.0 must be"),
        ({"dimensions": {"masses": {}}, "boundary_episodes": "full"}, "adr.boundary_episodes='full': choose one of"),
        ({"dimensions": {"masses": {"init": [1.2, 1.5], "limits": [0.5, 2.0]}}, "nominal_probability": 0.2},
         "leaves out the nominal value 1 that nominal_probability=0.2 holds it at"),
        ({"dimensions": {"masses": {"init": [1, 1], "limits": [0.0, 2.0]}}, "sampling": "log_uniform"},
         "log_uniform sampling needs scale factors > 0"),
    ],
)
def test_bad_adr_settings_are_rejected(adr: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        DynamicsSpec.from_dict({"name": "adr", "adr": adr})
    assert message in str(err.value)


def test_unknown_parameter_and_unphysical_limits_are_rejected_on_the_env() -> None:
    with pytest.raises(ValueError, match="unknown parameter 'torso_mas'"):
        validate_dynamics("hopper", adr_spec(torso_mas={"limits": [0.5, 2.0]}))
    with pytest.raises(ValueError, match="a mass must be > 0"):
        validate_dynamics("hopper", adr_spec(masses={"limits": [0.0, 2.0]}))
    with pytest.raises(ValueError, match=r"'masses' and 'torso_mass' both scale \['torso_mass'\]"):
        validate_dynamics("hopper", adr_spec(masses={"limits": [0.5, 2.0]}, torso_mass={"limits": [0.5, 2.0]}))


def test_adr_conflicts_with_explicit_parameters_or_latency() -> None:
    with pytest.raises(ValueError, match="move \\['gains'\\] there"):
        DynamicsSpec.from_dict({"adr": {"dimensions": {"masses": {}}}, "parameters": {"gains": {"low": 0.8, "high": 1.2}}})
    with pytest.raises(ValueError, match="remove effects \\['action_latency'\\]"):
        DynamicsSpec.from_dict({"adr": {"dimensions": {"action_latency": {"init": [0, 0], "limits": [0, 2], "step": 1}}},
                                "effects": {"action_latency": 1}})
