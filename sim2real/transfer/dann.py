"""Adversarial feature alignment (DANN, Ganin et al. 2016) of the policy's encoder.

A domain classifier reads the actor's encoder features through a gradient-reversal layer: it learns to
tell source-domain states (rollouts of the source policy under the source randomization: simulation,
free) from target-domain states (unlabelled rollouts of the current policy on the target, charged to
the budget), while the reversed gradient drives the encoder to make them indistinguishable. The action
head keeps the source behaviour by distillation: the adapted actor's deterministic actions are
regressed onto the source policy's on source states. Target collection alternates with alignment over
``rounds``, so later target states come from the partly adapted policy.

The domain gap is measured with a fresh probe classifier trained on frozen features and scored on
held-out balanced states (chance = 0.5), before and after alignment.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from sim2real.episodes import run_steps
from sim2real.policies.policy import Policy
from sim2real.policies.run_info import RunInfo
from sim2real.transfer.base import (
    AdaptedPolicy,
    TransferMethod,
    TransferSetup,
    make_source_env,
    make_target_env,
    register_method,
    set_checked,
)
from sim2real.transfer.budget import TargetBudget
from sim2real.validation import require_float, require_int


@dataclass(frozen=True)
class DannSettings:
    """Settings of DANN.

    Attributes:
        rounds: Alternations of target collection (``budget / rounds`` steps each) and alignment.
        source_states: Source-domain states collected with the source policy (free: simulation).
        updates_per_round: Gradient steps of alignment per round.
        batch_size: States per domain in each gradient step.
        learning_rate: Adam learning rate of encoder, head and domain classifier.
        alignment_weight: Final weight of the reversed domain loss against distillation; it ramps up as
            ``w * (2 / (1 + exp(-10 p)) - 1)`` over training progress ``p`` (the DANN schedule).
        classifier_hidden: Hidden width of the domain classifier (two hidden layers).
        classifier_steps: Extra classifier-only steps before each joint step (a sharper adversary).
        probe_updates: Gradient steps of the fresh probe classifier that measures the domain gap.
        holdout_fraction: Fraction of each domain's states held out for the probe's accuracy.
    """

    rounds: int = 2
    source_states: int = 10_000
    updates_per_round: int = 1000
    batch_size: int = 256
    learning_rate: float = 1.0e-3
    alignment_weight: float = 1.0
    classifier_hidden: int = 64
    classifier_steps: int = 3
    probe_updates: int = 400
    holdout_fraction: float = 0.2

    def __post_init__(self) -> None:
        counts = ("rounds", "source_states", "updates_per_round", "batch_size", "classifier_hidden", "probe_updates")
        set_checked(self, **{name: require_int(name, getattr(self, name), minimum=1) for name in counts})
        set_checked(
            self,
            classifier_steps=require_int("classifier_steps", self.classifier_steps, minimum=0),
            learning_rate=require_float("learning_rate", self.learning_rate, low=0.0, low_open=True),
            alignment_weight=require_float("alignment_weight", self.alignment_weight, low=0.0),
            holdout_fraction=require_float("holdout_fraction", self.holdout_fraction, low=0.0, high=1.0,
                                           low_open=True, high_open=True),
        )


class GradientReversal(torch.autograd.Function):
    """Identity forward; multiplies the gradient by ``-weight`` backward."""

    @staticmethod
    def forward(ctx: Any, features: torch.Tensor, weight: float) -> torch.Tensor:  # noqa: D102
        ctx.weight = weight
        return features.view_as(features)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        return -ctx.weight * grad, None


def reverse_gradient(features: torch.Tensor, weight: float) -> torch.Tensor:
    """Gradient-reversal layer: ``features`` unchanged, gradient scaled by ``-weight``."""
    return GradientReversal.apply(features, weight)


def domain_classifier(in_features: int, hidden: int) -> nn.Module:
    """An MLP giving the logit of "target domain"."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 1))


@register_method
class Dann(TransferMethod[DannSettings]):
    """Align source and target features adversarially while distilling the source's actions."""

    name = "dann"
    Settings = DannSettings

    def validate(self, setup: TransferSetup, source: RunInfo) -> None:
        """Checks that every round gets target states."""
        if setup.budget // self.settings.rounds < 2:
            raise ValueError(f"budget={setup.budget} is too small for rounds={self.settings.rounds}")

    def adapt(self, setup: TransferSetup, source: Policy, budget: TargetBudget) -> AdaptedPolicy:
        """Collects target states in rounds and aligns the encoder between them."""
        s = self.settings
        rng = np.random.default_rng(setup.seed)
        student = source.trainable_copy(device=setup.device)
        source_obs = collect_states(make_source_env(setup), source, s.source_states, rng)
        src_train, src_test = split(source.normalize(source_obs), s.holdout_fraction, rng)
        with torch.no_grad():
            teacher_actions = source.network_action(source.obs_tensor(src_train, normalized=True))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(setup.seed)
            classifier = domain_classifier(student.feature_size, s.classifier_hidden).to(setup.device)
        trainer = _Aligner(student, classifier, s, setup.device, rng)
        per_round = budget.limit // s.rounds
        target_train: list[np.ndarray] = []
        target_test: list[np.ndarray] = []
        for round_index in range(s.rounds):
            steps = per_round if round_index < s.rounds - 1 else budget.remaining
            actor = source if round_index == 0 else student
            target_obs = collect_states(make_target_env(setup, budget, "rollouts"), actor, steps, rng)
            train_part, test_part = split(source.normalize(target_obs), s.holdout_fraction, rng)
            target_train.append(train_part)
            target_test.append(test_part)
            trainer.run(src_train, teacher_actions, np.concatenate(target_train), round_index)
        student.sync_target_actor()
        held_target = np.concatenate(target_test)
        domains = (src_train, np.concatenate(target_train), src_test, held_target)
        metrics: dict[str, Any] = {
            "domain_accuracy_before": probe_accuracy(source, *domains, s, setup.seed, setup.device),
            "domain_accuracy_after": probe_accuracy(student, *domains, s, setup.seed, setup.device),
            "adversary_accuracy_last": round(trainer.last_accuracy, 4),
        }
        metrics["distill_mse_heldout"] = action_mse(student, source, src_test)
        metrics["target_action_change_heldout"] = action_mse(student, source, held_target)
        metrics["source_states"] = int(len(source_obs))
        return AdaptedPolicy(model=student.model, normalizer=source.normalizer_file, metrics=metrics)


class _Aligner:
    """The DANN update: distillation on source states plus the reversed domain loss."""

    def __init__(self, student: Policy, classifier: nn.Module, settings: DannSettings, device: str,
                 rng: np.random.Generator) -> None:
        self.student, self.classifier, self.s, self.device, self.rng = student, classifier, settings, device, rng
        params = [*student.encoder.parameters(), *student.head.parameters(), *classifier.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=settings.learning_rate)
        self.last_accuracy = float("nan")

    def run(self, source: np.ndarray, teacher: torch.Tensor, target: np.ndarray, round_index: int) -> None:
        total = self.s.rounds * self.s.updates_per_round
        hits, seen = 0, 0
        for i in range(self.s.updates_per_round):
            progress = (round_index * self.s.updates_per_round + i) / max(total - 1, 1)
            weight = self.s.alignment_weight * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0)
            correct, count = self._step(source, teacher, target, weight)
            if i >= self.s.updates_per_round * 3 // 4:
                hits, seen = hits + correct, seen + count
        self.last_accuracy = hits / max(seen, 1)

    def _batch(self, source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        src_idx = self.rng.integers(len(source), size=self.s.batch_size)
        tgt_idx = self.rng.integers(len(target), size=self.s.batch_size)
        states = torch.as_tensor(np.concatenate([source[src_idx], target[tgt_idx]]), device=self.device)
        labels = torch.cat([torch.zeros(len(src_idx)), torch.ones(len(tgt_idx))]).to(self.device)
        return src_idx, states, labels

    def _step(self, source: np.ndarray, teacher: torch.Tensor, target: np.ndarray, weight: float) -> tuple[int, int]:
        for _ in range(self.s.classifier_steps):
            _, states, labels = self._batch(source, target)
            with torch.no_grad():
                features = self.student.features(states)
            self._minimize(nn.functional.binary_cross_entropy_with_logits(self.classifier(features).squeeze(-1), labels))
        src_idx, states, labels = self._batch(source, target)
        distill = ((self.student.network_action(states[: len(src_idx)]) - teacher[src_idx]) ** 2).mean()
        logits = self.classifier(reverse_gradient(self.student.features(states), weight)).squeeze(-1)
        self._minimize(distill + nn.functional.binary_cross_entropy_with_logits(logits, labels))
        return int(((logits > 0).float() == labels).sum()), len(labels)

    def _minimize(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()


def collect_states(env: gym.Env, policy: Policy, steps: int, rng: np.random.Generator) -> np.ndarray:
    """Raw observations of ``steps`` steps of ``policy`` in ``env`` (closed after; episodes reset with seeds
    drawn from ``rng`` as they start)."""
    seeds: Iterator[int] = (int(rng.integers(2**31)) for _ in itertools.count())
    try:
        return np.stack([np.asarray(step.obs, np.float32)
                         for step in run_steps(env, policy.act, seeds, steps=steps, reset=policy.reset)])
    finally:
        env.close()


def split(states: np.ndarray, holdout: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random ``(train, held-out)`` split (at least one state on each side)."""
    order = rng.permutation(len(states))
    n_test = min(max(1, int(round(len(states) * holdout))), len(states) - 1)
    return states[order[n_test:]].astype(np.float32), states[order[:n_test]].astype(np.float32)


def probe_accuracy(policy: Policy, source_train: np.ndarray, target_train: np.ndarray, source_test: np.ndarray,
                   target_test: np.ndarray, settings: DannSettings, seed: int, device: str) -> float:
    """Held-out balanced accuracy of a fresh classifier telling the domains apart from ``policy``'s features
    (of normalized states)."""
    with torch.no_grad():
        feats = [policy.features(policy.obs_tensor(x, normalized=True)) for x in
                 (source_train, target_train, source_test, target_test)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        probe = domain_classifier(feats[0].shape[1], settings.classifier_hidden).to(device)
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed + 1)
    for _ in range(settings.probe_updates):
        src = feats[0][rng.integers(len(feats[0]), size=settings.batch_size)]
        tgt = feats[1][rng.integers(len(feats[1]), size=settings.batch_size)]
        logits = probe(torch.cat([src, tgt])).squeeze(-1)
        labels = torch.cat([torch.zeros(len(src)), torch.ones(len(tgt))]).to(device)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        source_acc = (probe(feats[2]).squeeze(-1) <= 0).float().mean().item()
        target_acc = (probe(feats[3]).squeeze(-1) > 0).float().mean().item()
    return round(0.5 * (source_acc + target_acc), 4)


def action_mse(student: Policy, teacher: Policy, states: np.ndarray) -> float:
    """Mean squared difference of the two policies' deterministic actions on normalized ``states``."""
    with torch.no_grad():
        obs = student.obs_tensor(states, normalized=True)
        return round(float(((student.network_action(obs) - teacher.network_action(obs)) ** 2).mean()), 6)
