"""``calibration.json`` and its plot: what was identified, how sure, and how much better the simulator predicts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sim2real.randomization.spec import DynamicsSpec
from sim2real.runs import atomic_path, read_json, write_json_atomic
from sim2real.sysid.identify import calibrated_randomization

CALIBRATION_FILE = "calibration.json"
CALIBRATION_PLOT = "calibration.png"


def summary(calibration: Mapping[str, Any]) -> dict[str, Any]:
    """A few headline numbers of a calibration dict (for metrics and console output)."""
    heldout = {f"k{row['horizon']}": [row["rmse_before"], row["rmse_after"]] for row in calibration["heldout"]}
    return {
        "scales": {h: p["value"] for h, p in calibration["parameters"].items()},
        "errors": {h: p["error"] for h, p in calibration["parameters"].items() if p["error"] is not None},
        "non_identifiable": calibration["non_identifiable"],
        "latency": calibration["latency"]["value"],
        "heldout_rmse_before_after": heldout,
        "wall_time_s": calibration["wall_time_s"],
    }


def read_calibration(path: str | Path, env: str | None = None) -> dict[str, Any]:
    """The calibration a ``calibration.json`` holds (``path`` the file or the folder it is in: a calibration
    or sysid transfer run); with ``env``, refuses one of another robot.

    Raises:
        ValueError: no such file, unreadable JSON, not a calibration, or a calibration of another robot.
    """
    path = Path(path)
    file = path / CALIBRATION_FILE if path.is_dir() else path
    if not file.is_file():
        raise ValueError(f"calibration={path}: no {CALIBRATION_FILE} there; give the file, or the folder of a "
                         f"calibration (scripts/calibrate.py) or sysid transfer run that holds one")
    try:
        data = read_json(file)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"calibration={file} is not readable JSON ({err})") from None
    missing = [k for k in ("env", "parameters", "latency") if not isinstance(data, dict) or k not in data]
    if missing:
        raise ValueError(f"calibration={file} is not a calibration (no {', '.join(missing)}); it is what "
                         f"scripts/calibrate.py or method=sysid write")
    if env is not None and data["env"] != env:
        raise ValueError(f"calibration={file} identifies env '{data['env']}', not '{env}'")
    return data


def calibration_randomization(calibration: Mapping[str, Any], base: DynamicsSpec | None = None,
                              name: str = "calibrated") -> DynamicsSpec:
    """The calibrated randomization of a calibration dict (what ``calibration.json`` holds) over ``base``,
    as :meth:`~sim2real.sysid.identify.Calibration.randomization` builds it from the calibration itself."""
    latency = calibration["latency"]
    ranges = {handle: p["calibrated_range"] for handle, p in calibration["parameters"].items()}
    searched = latency["calibrated_range"] if len(latency["searched"]) > 1 else None
    return calibrated_randomization(ranges, searched, base, name)


def write_calibration(calibration: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Writes ``calibration.json`` and ``calibration.png`` into ``out_dir`` atomically; returns their paths."""
    out_dir = Path(out_dir)
    json_path = out_dir / CALIBRATION_FILE
    write_json_atomic(json_path, dict(calibration))
    return [json_path, plot_calibration(calibration, out_dir / CALIBRATION_PLOT)]


def plot_calibration(calibration: Mapping[str, Any], path: str | Path) -> Path:
    """Left: per parameter, the prior range, the calibrated range, the fit with its 95% interval and the
    true value where known (not-identified parameters in red). Right: held-out k-step prediction error
    before and after calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = calibration["parameters"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [max(2, len(params)), 2]})
    for i, p in enumerate(params.values()):
        colour = "tab:blue" if p["identifiable"] else "tab:red"
        left.plot([i, i], p["prior"], color="0.85", lw=14, solid_capstyle="butt", label="prior" if i == 0 else None)
        left.plot([i, i], p["calibrated_range"], color=colour, alpha=0.35, lw=8, solid_capstyle="butt",
                  label="calibrated range" if i == 0 else None)
        if p["interval_95"] is not None:
            low, high = p["interval_95"]
            left.errorbar([i], [p["value"]], yerr=[[p["value"] - low], [high - p["value"]]], color=colour, capsize=4)
        left.plot([i], [p["value"]], "o", color=colour, label="fit" if i == 0 else None)
        if p["true_value"] is not None:
            left.plot([i], [p["true_value"]], "kx", ms=10, mew=2, label="true" if i == 0 else None)
    left.set_yscale("log")
    left.set_xticks(range(len(params)))
    left.set_xticklabels([h if p["identifiable"] else f"{h}\n(not identified)" for h, p in params.items()])
    left.set_xlim(-0.7, len(params) - 0.3)
    left.set_ylabel("scale factor (x nominal)")
    lat = calibration["latency"]
    left.set_title(f"identified parameters; latency {lat['value']} step(s)"
                   + (f" (true {lat['true_value']})" if lat["true_value"] is not None and len(lat["searched"]) > 1 else ""))
    left.legend(loc="best", fontsize=8)
    _plot_errors(right, calibration["heldout"])
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def _plot_errors(axis: Any, rows: list[Mapping[str, Any]]) -> None:
    rows = [r for r in rows if r["rmse_before"] is not None]
    if not rows:
        axis.text(0.5, 0.5, "no held-out trajectories", ha="center", va="center", transform=axis.transAxes)
        axis.set_axis_off()
        return
    positions = range(len(rows))
    floor = 1e-12
    before = [max(r["rmse_before"], floor) for r in rows]
    after = [max(r["rmse_after"], floor) for r in rows]
    axis.bar([p - 0.2 for p in positions], before, width=0.4, color="0.6", label="nominal simulator")
    axis.bar([p + 0.2 for p in positions], after, width=0.4, color="tab:green", label="calibrated")
    axis.set_yscale("log")
    axis.set_xticks(list(positions))
    axis.set_xticklabels([f"{r['horizon']}-step\n({r['windows']} windows)" for r in rows])
    axis.set_ylabel("held-out RMS error (x typical step change)")
    axis.set_title("prediction error on held-out trajectories")
    axis.legend(fontsize=8)
