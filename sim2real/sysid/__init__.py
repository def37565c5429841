"""System identification: record a robot's state readings (encoders, and a floating base's pose), replay
them in the simulator, and fit a distribution over named physical parameters (and the action latency) with CMA-ES.

* :mod:`sim2real.sysid.data`: recorded trajectories, their dataset format, recording them;
* :mod:`sim2real.sysid.replay`: the k-step replay error of candidate dynamics;
* :mod:`sim2real.sysid.identify`: the fit, the spread, what the data cannot separate;
* :mod:`sim2real.sysid.report`: ``calibration.json`` and its plot.
"""

from sim2real.sysid.data import (
    Trajectories,
    check_env,
    excitation,
    load_trajectories,
    record_trajectories,
    save_trajectories,
)
from sim2real.sysid.identify import Calibration, IdentifySettings, identify
from sim2real.sysid.report import write_calibration

__all__ = [
    "Calibration",
    "IdentifySettings",
    "Trajectories",
    "check_env",
    "excitation",
    "identify",
    "load_trajectories",
    "record_trajectories",
    "save_trajectories",
    "write_calibration",
]
