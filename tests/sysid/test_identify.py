"""Identification: recovers known shifts, repeats itself, flags what the data cannot see, rejects bad input."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sim2real.presets import load_preset, target_spec
from sim2real.randomization import DynamicsSpec
from sim2real.randomization.distributions import Uniform
from sim2real.sysid.data import Trajectories
from sim2real.sysid.identify import IdentifySettings, check_priors, identify, parse_priors
from tests.sysid.conftest import ENV, record

FAST = {"evaluations": 60, "search_windows": 200, "bootstrap": 50, "latency_max": 0}


def settings(**parameters: tuple[float, float]) -> IdentifySettings:
    return IdentifySettings(parameters=parameters, **FAST)


def test_recovers_doubled_gravity_from_1000_steps(high_gravity_data: Trajectories) -> None:
    calibration = identify(ENV, high_gravity_data, settings(gravity=(0.25, 4.0)), truth=target_spec("high_gravity"))
    (gravity,) = calibration.parameters
    assert gravity.value == pytest.approx(2.0, rel=0.1) and gravity.true_value == pytest.approx(2.0)
    assert gravity.identifiable and abs(gravity.error) < 0.1
    low, high = gravity.calibrated
    assert low < 2.0 < high and high / low < 1.2  # a narrow calibrated range around the fit
    before, after = calibration.heldout[0]["rmse_before"], calibration.heldout[0]["rmse_after"]
    assert after < 0.01 * before  # the calibrated simulator predicts held-out transitions far better


def test_recovers_weak_motors_gain() -> None:
    data = record("weak_motors", 1000)
    calibration = identify(ENV, data, settings(gains=(0.25, 4.0)), truth=target_spec("weak_motors"))
    assert calibration.scales["gains"] == pytest.approx(0.7, rel=0.1)


def with_encoder_noise(data: Trajectories, std: float, seed: int = 0) -> Trajectories:
    """``data`` with Gaussian noise on every velocity reading (each reading is both a row's ``next_qvel`` and
    the next row's ``qvel``, so the trajectories stay consistent)."""
    rng = np.random.default_rng(seed)
    qvel, next_qvel = data.qvel.copy(), data.next_qvel.copy()
    for start, end in data.episode_bounds():
        noise = rng.normal(0.0, std, (end - start + 1, qvel.shape[1]))
        qvel[start:end] += noise[:-1]
        next_qvel[start:end] += noise[1:]
    return dataclasses.replace(data, qvel=qvel, next_qvel=next_qvel)


def test_one_noisy_trajectory_gets_a_block_bootstrap_spread_not_false_precision(high_gravity_data: Trajectories) -> None:
    noisy = with_encoder_noise(high_gravity_data, 0.03)
    lengths = [end - start for start, end in noisy.episode_bounds()]
    one = noisy.select_episodes([int(np.argmax(lengths))])
    fast = {**FAST, "holdout_fraction": 0.0}
    single = identify(ENV, one, IdentifySettings(parameters={"gravity": (0.25, 4.0)}, **fast))
    (gravity,) = single.parameters
    # Resampling the one trajectory would always draw it again: a spread of ~0 and a range that need not
    # hold the truth. Blocks of its windows give a real spread instead.
    assert single.fit["bootstrap_unit"].startswith("block of")
    assert gravity.log_spread is not None and gravity.log_spread > 0.01
    assert gravity.calibrated[0] < 2.0 < gravity.calibrated[1]
    many = identify(ENV, noisy, IdentifySettings(parameters={"gravity": (0.25, 4.0)}, **fast))
    assert many.fit["bootstrap_unit"] == "trajectory" and many.parameters[0].log_spread < gravity.log_spread


def test_same_seed_same_calibration(high_gravity_data: Trajectories) -> None:
    first = identify(ENV, high_gravity_data, settings(gravity=(0.25, 4.0), masses=(0.5, 2.0))).to_dict()
    again = identify(ENV, high_gravity_data, settings(gravity=(0.25, 4.0), masses=(0.5, 2.0))).to_dict()
    first.pop("wall_time_s"), again.pop("wall_time_s")
    assert first == again


def test_a_parameter_without_effect_is_flagged_not_given_false_precision(high_gravity_data: Trajectories) -> None:
    calibration = identify(ENV, high_gravity_data, settings(gravity=(0.25, 4.0), frictions=(0.25, 4.0)))
    frictions = next(p for p in calibration.parameters if p.handle == "frictions")
    assert calibration.non_identifiable == ["frictions"]
    assert frictions.log_spread is None and frictions.calibrated == (0.25, 4.0)  # the whole prior: no claim
    assert any(d["status"] == "flat" and abs(d["direction"]["frictions"]) > 0.99 for d in calibration.directions)
    assert calibration.scales["gravity"] == pytest.approx(2.0, rel=0.1)
    report = calibration.to_dict()
    assert report["parameters"]["frictions"]["interval_95"] is None
    assert report["randomization"]["parameters"]["frictions"] == {"op": "scale", "dist": "log_uniform",
                                                                  "low": 0.25, "high": 4.0}


def test_identifies_the_action_latency() -> None:
    data = record("delayed", 600)
    calibration = identify(ENV, data, IdentifySettings(parameters={"gains": (0.5, 2.0)}, **{**FAST, "latency_max": 3}),
                           truth=target_spec("delayed"))
    latency = calibration.latency
    assert latency.value == 2 == latency.true_value and latency.identified and latency.calibrated == (2, 2)
    assert min(v for k, v in latency.losses.items() if k != 2) > 100 * latency.losses[2]
    spec = calibration.randomization()
    assert spec.effects.action_latency == 2 and spec.effects.action_latency_max is None
    assert calibration.scales["gains"] == pytest.approx(1.0, rel=0.05)


def test_calibrated_randomization_keeps_the_base_for_what_was_not_identified(high_gravity_data: Trajectories) -> None:
    calibration = identify(ENV, high_gravity_data, settings(gravity=(0.25, 4.0)))
    base = target_spec("heavy_low_friction")  # stands in for a source randomization: masses and frictions
    spec = calibration.randomization(base)
    assert [t.target for t in spec.parameters] == ["masses", "frictions", "gravity"]
    assert math.isclose(spec.parameters[2].distribution.low, calibration.parameters[0].calibrated[0])
    spec = identify(ENV, high_gravity_data, settings(gravity=(0.25, 4.0), masses=(0.5, 2.0))).randomization(base)
    assert [t.target for t in spec.parameters] == ["frictions", "gravity", "masses"]  # identified ones replace


def test_an_adr_source_is_kept_at_the_ranges_it_reached_not_its_limits(high_gravity_data: Trajectories) -> None:
    """A finished ADR source stands at the ranges it reached; its spec's terms span the limits (x0.25-4), which
    the calibrated simulation must not inherit for what was not identified."""
    reached = {"masses": [0.8, 1.44], "frictions": [1.0, 1.2], "gains": [0.9, 1.0], "gravity": [1.0, 1.0],
               "action_latency": [0, 1]}
    adr = DynamicsSpec.from_dict(load_preset("randomization", "adr"))
    base = dataclasses.replace(adr, adr=adr.adr.starting_at(reached))  # what RunInfo gives for a finished ADR run
    spec = identify(ENV, high_gravity_data, settings(gravity=(0.25, 4.0))).randomization(base)
    assert spec.adr is None and [t.target for t in spec.parameters] == ["masses", "frictions", "gains", "gravity"]
    for term in spec.parameters[:3]:
        distribution = term.distribution
        assert [distribution.low, distribution.high] == reached[term.target] and type(distribution) is Uniform
    assert (spec.effects.action_latency, spec.effects.action_latency_max) == (0, 1)


@pytest.mark.parametrize(("parameters", "message"), [
    ({"torso_mass": [0.5, 2.0]}, "unknown parameter 'torso_mass'.*groups: masses.*parameters: cart_mass"),
    ({"masses": [0.0, 2.0]}, r"prior range \[0, 2\] is a scale factor and must be > 0"),
    ({"masses": [-1.0, 2.0]}, "must be > 0"),
    ({"masses": [2.0, 2.0]}, r"prior range \[2, 2\] needs low < high"),
    ({"masses": [3.0, 1.0]}, "needs low < high"),
    ({"masses": [1.0]}, "must be \\[low, high\\], two finite numbers"),
    ({}, "give at least one handle"),
    ({"masses": [0.5, 2.0], "pole_mass": [0.5, 2.0]}, "'masses' and 'pole_mass' overlap"),
    ({"armatures": [0.5, 2.0]}, "every member .* is 0 on inverted_pendulum"),
])
def test_bad_parameters_are_rejected_naming_the_choices(parameters: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_priors(ENV, parse_priors(parameters))


def test_dataset_of_another_env_is_rejected_before_work(high_gravity_data: Trajectories) -> None:
    with pytest.raises(ValueError, match="do not fit env 'inverted_double_pendulum'"):
        identify("inverted_double_pendulum", high_gravity_data, settings(gravity=(0.5, 3.0)))


def test_a_null_range_leaves_a_default_handle_out() -> None:
    assert [p.handle for p in parse_priors({"masses": None, "gravity": [0.5, 2.0]})] == ["gravity"]
    assert IdentifySettings(parameters={"masses": None, "gravity": [0.5, 2.0]}).parameters == {"gravity": (0.5, 2.0)}
    with pytest.raises(ValueError, match="give at least one handle"):
        parse_priors({"masses": None})
