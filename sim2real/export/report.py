"""A short human-readable summary of an exported bundle."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def format_summary(manifest: Mapping[str, Any]) -> str:
    """Lines describing a bundle manifest: source, spaces, processing, control period and parity."""
    parity = manifest.get("parity") or {}
    norm = "in graph" if manifest.get("observation_normalization") else "none"
    lines = [
        f"policy: {manifest['algo']} on {manifest['env']['id']} (run {manifest['source_run']['path']})",
        f"observation dim {manifest['observation_space']['shape'][0]}, action dim {manifest['action_space']['shape'][0]}, "
        f"control period {manifest['control_period_s']:g} s",
        f"observation normalization: {norm}; action processing: {manifest['action_processing']['kind']} (in graph)",
    ]
    if parity:
        lines.append(f"parity over {parity['observations']} observations ({parity['episodes']} episodes): "
                     f"onnx max abs diff {parity['onnx_max_abs_diff']:.3g}, "
                     f"torchscript {parity['torchscript_max_abs_diff']:.3g} (tolerance {parity['tolerance']:g}; "
                     f"SB3 batched vs single: {_batched(parity['sb3_batch_vs_single_max_abs_diff'])})")
    return "\n".join(lines)


def _batched(value: float | None) -> str:
    """SB3's batched-vs-single noise floor; a recurrent policy has none (its batch is parallel episodes)."""
    return "n/a (recurrent)" if value is None else f"{value:.3g}"
