"""Every YAML in configs/ composes, and every target works on every registered env."""

from __future__ import annotations

import itertools

import pytest
from hydra import compose, initialize_config_dir

from sim2real.envs import ENVS
from sim2real.presets import CONFIG_DIR, group_options, load_preset, target_spec, to_dict
from sim2real.randomization import DynamicsSpec, validate_dynamics
from sim2real.training import train_config_from_dict

PRIMARY = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


@pytest.mark.parametrize("name", PRIMARY)
def test_primary_configs_compose(name: str) -> None:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name=name)
    assert cfg is not None


@pytest.mark.parametrize(("env", "algo"), list(itertools.product(group_options("env"), group_options("algo"))))
def test_train_config_validates_for_every_env_and_algo(env: str, algo: str) -> None:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name="train", overrides=[f"env={env}", f"algo={algo}"])
    config = train_config_from_dict(to_dict(cfg))
    assert config.env.name == env and config.algo.name == algo


@pytest.mark.parametrize("env", sorted(ENVS))
def test_env_alone_picks_the_robots_default_algorithm(env: str) -> None:
    assert (CONFIG_DIR / "algo" / "default" / f"{env}.yaml").is_file()  # every registered robot has a default
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        default = to_dict(compose(config_name=f"algo/default/{env}"))["algo"]["name"]
        picked = train_config_from_dict(to_dict(compose(config_name="train", overrides=[f"env={env}"])))
        chosen = train_config_from_dict(to_dict(compose(config_name="train", overrides=[f"env={env}", "algo=sac"])))
        pipeline = to_dict(compose(config_name="pipeline", overrides=[f"env={env}"]))
    assert picked.algo.name == default == pipeline["algo"]["name"]
    assert chosen.algo.name == "sac"  # algo=<name> still wins
    assert picked.algo == train_config_from_dict({"env": {"name": env}, "algo": load_preset("algo", default)}).algo


def test_a_robot_without_a_default_algorithm_names_the_choices() -> None:
    with pytest.raises(ValueError, match="no algorithm chosen for env 'my_robot'.*algo=ppo"):
        train_config_from_dict({"env": {"name": "my_robot", "id": "InvertedPendulum-v5"}})


def test_every_group_yaml_parses() -> None:
    for group in ("randomization", "target"):
        for name in group_options(group):
            spec = DynamicsSpec.from_dict(load_preset(group, name))
            assert spec.name == name
    for name in group_options("env"):
        assert load_preset("env", name)["name"] in ENVS


@pytest.mark.parametrize("env", ENVS.names())
def test_every_target_and_randomization_fits_every_env(env: str) -> None:
    specs = [target_spec(t) for t in group_options("target")]
    specs += [DynamicsSpec.from_dict(load_preset("randomization", r)) for r in group_options("randomization")]
    validate_dynamics(env, *specs)


def test_required_targets_exist() -> None:
    required = {"nominal", "low_friction", "high_gravity", "heavy", "weak_motors", "delayed", "noisy", "broken_joint"}
    assert required <= set(group_options("target"))
