"""Named handles on a compiled MuJoCo model's physical parameters.

Every MuJoCo model gets the same handles, found by walking the compiled model:

* ``<body>_mass`` for each body with positive mass (its inertia is scaled with it),
* ``<geom>_friction`` for each geom (sliding friction; torsional and rolling scale with it),
* ``<joint>_damping`` and ``<joint>_armature`` for each non-free joint,
* ``<actuator>_gain`` for each actuator (for affine-bias actuators, kp and kv scale with it),
* ``gravity`` (the z component of ``opt.gravity``).

and the groups ``masses``, ``frictions``, ``dampings``, ``armatures``, ``gains``. Unnamed elements
are named after what they drive (an actuator on joint ``hip`` is ``hip``) or by kind and index
(``body4``).

A parameter vector holds one value per parameter; :meth:`ParameterSet.apply` writes it into the
model and :meth:`ParameterSet.restore` writes back the values seen at construction (the nominal).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

KINDS = ("mass", "friction", "damping", "armature", "gain", "gravity")
GROUPS = {"masses": "mass", "frictions": "friction", "dampings": "damping", "armatures": "armature", "gains": "gain"}
# Lowest valid value of each kind, and whether the bound itself is allowed.
# Changing these changes the mass matrix, so derived constants (subtree masses, invweight0, acc0) need mj_setConst.
NEEDS_SET_CONST = frozenset({"mass", "armature"})
LOWER_BOUNDS: dict[str, tuple[float, bool]] = {
    "mass": (0.0, False),
    "friction": (0.0, False),
    "gain": (0.0, False),
    "damping": (0.0, True),
    "armature": (0.0, True),
    "gravity": (-np.inf, True),
}


@dataclass(frozen=True)
class Parameter:
    """One scalar physical parameter of a model.

    Attributes:
        name: Handle used in configs, e.g. ``torso_mass``.
        kind: One of :data:`KINDS`.
        element: Name of the body, geom, joint or actuator it belongs to (``world`` for gravity).
        nominal: Value in the model when the :class:`ParameterSet` was built.
    """

    name: str
    kind: str
    element: str
    nominal: float


def _element_names(model: mujoco.MjModel, obj: mujoco.mjtObj, count: int, prefix: str) -> list[str]:
    names = []
    for i in range(count):
        name = mujoco.mj_id2name(model, obj, i)
        names.append(name if name else f"{prefix}{i}")
    return names


def _actuator_names(model: mujoco.MjModel) -> list[str]:
    joint_names = _element_names(model, mujoco.mjtObj.mjOBJ_JOINT, model.njnt, "joint")
    names = []
    for i in range(model.nu):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, i)
        if not name and model.actuator_trntype[i] == mujoco.mjtTrn.mjTRN_JOINT:
            name = joint_names[model.actuator_trnid[i, 0]]
        names.append(name if name else f"actuator{i}")
    return names


class ParameterSet:
    """The randomizable physical parameters of one compiled model, with fast vectorized writes.

    Args:
        model: The compiled model to read nominal values from and write into.
        data: Its data, needed by ``mj_setConst`` to recompute derived quantities.
    """

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        self.model = model
        self.data = data
        bodies = _element_names(model, mujoco.mjtObj.mjOBJ_BODY, model.nbody, "body")
        geoms = _element_names(model, mujoco.mjtObj.mjOBJ_GEOM, model.ngeom, "geom")
        joints = _element_names(model, mujoco.mjtObj.mjOBJ_JOINT, model.njnt, "joint")
        actuators = _actuator_names(model)

        self._body_ids = np.flatnonzero(model.body_mass > 0)
        self._geom_ids = np.arange(model.ngeom)
        self._joint_ids = np.flatnonzero(model.jnt_type != mujoco.mjtJoint.mjJNT_FREE)
        self._actuator_ids = np.arange(model.nu)
        # Each non-free joint drives 1 dof (hinge, slide) or 3 (ball); all share the joint's value.
        self._joint_dofs = [
            np.arange(model.jnt_dofadr[j], model.jnt_dofadr[j] + _joint_dof_count(model.jnt_type[j]))
            for j in self._joint_ids
        ]
        self._dof_index = np.concatenate(self._joint_dofs).astype(int) if self._joint_dofs else np.zeros(0, int)
        self._dof_owner = np.concatenate(
            [np.full(len(d), k) for k, d in enumerate(self._joint_dofs)]
        ).astype(int) if self._joint_dofs else np.zeros(0, int)
        self._affine = model.actuator_biastype[self._actuator_ids] == mujoco.mjtBias.mjBIAS_AFFINE

        self._nominal_inertia = model.body_inertia.copy()
        self._nominal_friction = model.geom_friction.copy()
        self._nominal_biasprm = model.actuator_biasprm.copy()
        self._nominal_gravity = model.opt.gravity.copy()
        self._nominal_fields = {
            name: getattr(model, name).copy()
            for name in ("body_mass", "body_inertia", "geom_friction", "dof_damping", "dof_armature",
                         "actuator_gainprm", "actuator_biasprm")
        }

        params: list[Parameter] = []
        params += [Parameter(f"{bodies[i]}_mass", "mass", bodies[i], float(model.body_mass[i])) for i in self._body_ids]
        params += [
            Parameter(f"{geoms[i]}_friction", "friction", geoms[i], float(model.geom_friction[i, 0]))
            for i in self._geom_ids
        ]
        for field in ("damping", "armature"):
            values = model.dof_damping if field == "damping" else model.dof_armature
            params += [
                Parameter(f"{joints[j]}_{field}", field, joints[j], float(values[dofs[0]]))
                for j, dofs in zip(self._joint_ids, self._joint_dofs)
            ]
        params += [
            Parameter(f"{actuators[i]}_gain", "gain", actuators[i], float(model.actuator_gainprm[i, 0]))
            for i in self._actuator_ids
        ]
        params.append(Parameter("gravity", "gravity", "world", float(model.opt.gravity[2])))
        self.parameters: tuple[Parameter, ...] = tuple(params)
        self.names: tuple[str, ...] = tuple(p.name for p in params)
        if len(set(self.names)) != len(self.names):
            duplicates = sorted({n for n in self.names if self.names.count(n) > 1})
            raise ValueError(f"model has duplicate parameter names {duplicates}; give its elements unique names")
        self.nominal = np.array([p.nominal for p in params], dtype=np.float64)
        self._index = {name: i for i, name in enumerate(self.names)}
        kinds = np.array([p.kind for p in params])
        self._slices = {kind: np.flatnonzero(kinds == kind) for kind in KINDS}
        self.groups: dict[str, np.ndarray] = {group: self._slices[kind] for group, kind in GROUPS.items()}
        self.groups["gravity"] = self._slices["gravity"]
        self.kinds = kinds
        self._nominal_mass = self.nominal[self._slices["mass"]]
        nominal_friction = self.nominal[self._slices["friction"]]
        # A zero nominal sliding friction keeps its torsional/rolling coefficients (ratio 1).
        self._zero_friction = nominal_friction == 0
        self._friction_denominator = np.where(self._zero_friction, 1.0, nominal_friction)
        nominal_gain = self.nominal[self._slices["gain"]]
        self._inv_nominal_gain = np.divide(1.0, nominal_gain, out=np.ones_like(nominal_gain), where=nominal_gain != 0)
        self._affine_ids = self._actuator_ids[self._affine]
        # Basic slices instead of index arrays where the ids are contiguous: much cheaper writes at every reset.
        self._vec = {kind: compact_index(idx) for kind, idx in self._slices.items()}
        self._bodies = compact_index(self._body_ids)
        self._geoms = compact_index(self._geom_ids)
        self._actuators = compact_index(self._actuator_ids)
        self._dofs = compact_index(self._dof_index)
        self._nominal_inertia_selected = self._nominal_inertia[self._body_ids]
        self._nominal_friction_selected = self._nominal_friction[self._geom_ids]

    def __len__(self) -> int:
        return len(self.names)

    def select(self, name: str) -> np.ndarray:
        """Indices of the parameters a handle or group names; raises ``ValueError`` listing valid names."""
        if name in self.groups:
            return self.groups[name]
        if name in self._index:
            return np.array([self._index[name]])
        raise ValueError(
            f"unknown parameter '{name}'; groups: {', '.join(self.groups)}; parameters: {', '.join(self.names)}"
        )

    def current(self) -> np.ndarray:
        """Reads the parameter vector currently in the model."""
        m = self.model
        values = np.empty(len(self.names))
        values[self._slices["mass"]] = m.body_mass[self._body_ids]
        values[self._slices["friction"]] = m.geom_friction[self._geom_ids, 0]
        first_dofs = np.array([d[0] for d in self._joint_dofs], dtype=int)
        values[self._slices["damping"]] = m.dof_damping[first_dofs]
        values[self._slices["armature"]] = m.dof_armature[first_dofs]
        values[self._slices["gain"]] = m.actuator_gainprm[self._actuator_ids, 0]
        values[self._slices["gravity"]] = m.opt.gravity[2]
        return values

    def apply(self, values: np.ndarray, kinds: frozenset[str] | None = None) -> None:
        """Writes a parameter vector into the model and recomputes derived quantities.

        Args:
            values: One value per parameter (see :attr:`names`).
            kinds: Write only these kinds (the others must hold their current values); None writes all.

        Call before ``mj_resetData`` (the env's reset): ``mj_setConst`` overwrites the state.
        """
        kinds = frozenset(KINDS) if kinds is None else kinds
        m, vec = self.model, self._vec
        if "mass" in kinds:
            mass = values[vec["mass"]]
            m.body_mass[self._bodies] = mass
            m.body_inertia[self._bodies] = self._nominal_inertia_selected * (mass / self._nominal_mass)[:, None]
        if "friction" in kinds:
            friction = values[vec["friction"]]
            ratio = friction / self._friction_denominator
            if self._zero_friction.any():
                ratio = np.where(self._zero_friction, 1.0, ratio)
            m.geom_friction[self._geoms] = self._nominal_friction_selected * ratio[:, None]
            m.geom_friction[self._geoms, 0] = friction
        if "damping" in kinds:
            m.dof_damping[self._dofs] = values[vec["damping"]][self._dof_owner]
        if "armature" in kinds:
            m.dof_armature[self._dofs] = values[vec["armature"]][self._dof_owner]
        if "gain" in kinds:
            gain = values[vec["gain"]]
            m.actuator_gainprm[self._actuators, 0] = gain
            if self._affine_ids.size:
                ratio = gain[self._affine] * self._inv_nominal_gain[self._affine]
                m.actuator_biasprm[self._affine_ids, 1:3] = self._nominal_biasprm[self._affine_ids, 1:3] * ratio[:, None]
        if "gravity" in kinds:
            m.opt.gravity[:] = self._nominal_gravity
            m.opt.gravity[2] = values[vec["gravity"]][0]
        if kinds & NEEDS_SET_CONST:
            mujoco.mj_setConst(m, self.data)

    def restore(self) -> None:
        """Writes the nominal values back, bit for bit, and recomputes derived quantities."""
        for name, value in self._nominal_fields.items():
            getattr(self.model, name)[:] = value
        self.model.opt.gravity[:] = self._nominal_gravity
        mujoco.mj_setConst(self.model, self.data)

    def as_dict(self, values: np.ndarray) -> dict[str, float]:
        """Maps a parameter vector to ``{name: value}``."""
        return dict(zip(self.names, values.tolist()))

    def check_values(self, values: np.ndarray) -> None:
        """Raises ``ValueError`` naming the first parameter whose value is physically invalid."""
        for kind, (low, inclusive) in LOWER_BOUNDS.items():
            idx = self._slices[kind]
            bad = values[idx] < low if inclusive else values[idx] <= low
            bad |= ~np.isfinite(values[idx])
            if bad.any():
                i = idx[np.flatnonzero(bad)[0]]
                rel = ">=" if inclusive else ">"
                raise ValueError(f"invalid value {values[i]:g} for parameter '{self.names[i]}': a {kind} must be {rel} {low:g}")


def compact_index(ids: np.ndarray) -> slice | np.ndarray:
    """A slice equivalent to ``ids`` when they are contiguous and increasing, else ``ids``."""
    if ids.size and np.array_equal(ids, np.arange(ids[0], ids[0] + ids.size)):
        return slice(int(ids[0]), int(ids[0]) + ids.size)
    return ids


def _joint_dof_count(joint_type: int) -> int:
    return 3 if int(joint_type) == int(mujoco.mjtJoint.mjJNT_BALL) else 1
