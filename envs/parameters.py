"""Named handles on a compiled MuJoCo model's physical parameters.

Every MuJoCo model gets the same handles, one kind per entry of :data:`PARAMETER_KINDS`:

* ``<body>_mass`` for each body with positive mass (its inertia is scaled with it),
* ``<geom>_friction`` for each geom (sliding friction; torsional and rolling scale with it),
* ``<joint>_damping`` and ``<joint>_armature`` for each non-free joint,
* ``<actuator>_gain`` for each actuator (for affine-bias actuators, kp and kv scale with it),
* ``gravity`` (the z component of ``opt.gravity``),
* ``<joint>_range`` for each limited hinge or slide joint: the width of its range, which a new value
  scales about the range's centre (``[0, 1]`` at width 2 becomes ``[-0.5, 1.5]``),
* ``<geom>_length`` for each capsule or cylinder geom that alone makes up its body (a limb): its length,
  grown from the end at the body's joint, with the body's children, sites, mass, inertia and centre of
  mass following the new shape (a morphology change),

and the groups ``masses``, ``frictions``, ``dampings``, ``armatures``, ``gains``, ``gravity``, ``ranges``,
``lengths``.
Unnamed elements are named after what they drive (an actuator on joint ``hip`` is ``hip``) or by kind
and index (``body4``). A parameter vector holds one value per parameter; :meth:`ParameterSet.apply`
writes it into the model and :meth:`ParameterSet.restore` writes back the nominal values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial, reduce

import mujoco
import numpy as np

_OBJ = mujoco.mjtObj


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


@dataclass(frozen=True)
class Binding:
    """A parameter kind bound to one model: its elements, and functions reading and writing their values.

    Attributes:
        elements: Names of the elements (bodies, geoms, joints, actuators) that carry the kind.
        read: Returns the value of each element now in the model.
        write: Writes one value per element into the model, starting from the nominal values read at
            binding time (never from the current ones, so writes never compound).
    """

    elements: list[str]
    read: Callable[[], np.ndarray]
    write: Callable[[np.ndarray], None]


@dataclass(frozen=True)
class ParameterKind:
    """One kind of parameter: the model fields it writes and how it binds to a model.

    Attributes:
        name: Kind name, the suffix of its handles.
        group: Handle selecting every parameter of the kind.
        fields: Every model field a write changes (``opt.gravity`` for an option); restored bit for bit.
        bind: Finds the kind's elements in a model and returns their :class:`Binding`.
        lower_bound: Lowest physically valid value.
        inclusive: Whether ``lower_bound`` itself is valid.
        needs_set_const: Whether a write changes the mass matrix, so derived constants (subtree mass,
            invweight0, acc0) must be recomputed with ``mj_setConst``.
        handle: Format of a parameter's name, from ``element`` and ``kind``.
        composes_with: A kind whose writes this one scales (it comes earlier in :data:`PARAMETER_KINDS`);
            writing either kind writes both, so neither compounds on the other's previous write.
    """

    name: str
    group: str
    fields: tuple[str, ...]
    bind: Callable[[mujoco.MjModel], Binding]
    lower_bound: float = 0.0
    inclusive: bool = False
    needs_set_const: bool = False
    handle: str = "{element}_{kind}"
    composes_with: str | None = None

    @property
    def rule(self) -> str:
        """The validity rule in words, e.g. ``a mass must be > 0``."""
        return f"a {self.name} must be {'>=' if self.inclusive else '>'} {self.lower_bound:g}"


def _body_mass(model: mujoco.MjModel) -> Binding:
    """Binds the mass of each body with positive mass; its inertia scales by the same factor."""
    ids = np.flatnonzero(model.body_mass > 0)
    at, nominal, inertia = compact_index(ids), model.body_mass[ids], model.body_inertia[ids]

    def write(values: np.ndarray) -> None:
        model.body_mass[at] = values
        model.body_inertia[at] = inertia * (values / nominal)[:, None]

    return Binding(_names(model, _OBJ.mjOBJ_BODY, ids), lambda: model.body_mass[ids], write)


def _geom_friction(model: mujoco.MjModel) -> Binding:
    """Binds the sliding friction of each geom; its torsional and rolling friction scale with it."""
    ids = np.arange(model.ngeom)
    at, friction = compact_index(ids), model.geom_friction[ids]
    zero = friction[:, 0] == 0  # a zero sliding friction keeps its torsional/rolling coefficients (ratio 1)
    any_zero, denominator = bool(zero.any()), np.where(zero, 1.0, friction[:, 0])

    def write(values: np.ndarray) -> None:
        ratio = values / denominator
        if any_zero:
            ratio = np.where(zero, 1.0, ratio)
        model.geom_friction[at] = friction * ratio[:, None]
        model.geom_friction[at, 0] = values

    return Binding(_names(model, _OBJ.mjOBJ_GEOM, ids), lambda: model.geom_friction[ids, 0], write)


def _joint_dofs(field: str, model: mujoco.MjModel) -> Binding:
    """Binds a dof field of each non-free joint; a ball joint's 3 dofs share the joint's value."""
    ids = np.flatnonzero(model.jnt_type != mujoco.mjtJoint.mjJNT_FREE)
    first, counts = model.jnt_dofadr[ids], np.where(model.jnt_type[ids] == mujoco.mjtJoint.mjJNT_BALL, 3, 1)
    owner = np.repeat(np.arange(ids.size), counts)
    dofs = compact_index(np.array([a + k for a, n in zip(first, counts) for k in range(n)], dtype=int))

    def write(values: np.ndarray) -> None:
        getattr(model, field)[dofs] = values[owner]

    return Binding(_names(model, _OBJ.mjOBJ_JOINT, ids), lambda: getattr(model, field)[first], write)


def _actuator_gain(model: mujoco.MjModel) -> Binding:
    """Binds the gain of each actuator; an affine-bias (servo) actuator's kp and kv scale with it."""
    affine = model.actuator_biastype == mujoco.mjtBias.mjBIAS_AFFINE
    affine_ids, bias, gain = np.flatnonzero(affine), model.actuator_biasprm[affine, 1:3], model.actuator_gainprm[:, 0]
    inverse = np.divide(1.0, gain, out=np.ones_like(gain), where=gain != 0)[affine]

    def write(values: np.ndarray) -> None:
        model.actuator_gainprm[:, 0] = values
        if affine_ids.size:
            model.actuator_biasprm[affine_ids, 1:3] = bias * (values[affine] * inverse)[:, None]

    return Binding(_actuator_names(model), lambda: model.actuator_gainprm[:, 0].copy(), write)


def _gravity(model: mujoco.MjModel) -> Binding:
    """Binds the z component of gravity (x and y stay nominal)."""
    nominal = model.opt.gravity.copy()

    def write(values: np.ndarray) -> None:
        model.opt.gravity[:] = nominal
        model.opt.gravity[2] = values[0]

    return Binding(["world"], lambda: model.opt.gravity[2:].copy(), write)


def _joint_range(model: mujoco.MjModel) -> Binding:
    """Binds the range width of each limited hinge or slide joint; a new width scales it about its centre."""
    hinge_or_slide = np.isin(model.jnt_type, (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE))
    ids = np.flatnonzero(hinge_or_slide & (model.jnt_limited != 0) & (np.diff(model.jnt_range)[:, 0] > 0))
    at, limits = compact_index(ids), model.jnt_range[ids]
    offsets, nominal = limits - limits.mean(axis=1, keepdims=True), np.diff(limits)[:, 0]

    def write(values: np.ndarray) -> None:
        # limits + offsets * (ratio - 1), not centre + offsets * ratio: the nominal width writes back exactly.
        model.jnt_range[at] = limits + offsets * (values / nominal - 1.0)[:, None]

    return Binding(_names(model, _OBJ.mjOBJ_JOINT, ids), lambda: np.diff(model.jnt_range[ids])[:, 0], write)


def _segment_volume_inertia(kind: int, radius: float, half: float) -> tuple[float, np.ndarray]:
    """Volume and principal inertia (transverse, transverse, axial) at unit density of a capsule or cylinder
    with half-length ``half`` along its z axis, about its centre (MuJoCo's compiler computes the same)."""
    r2, length = radius * radius, 2.0 * half
    cylinder = np.pi * r2 * length
    transverse, axial = cylinder * (3.0 * r2 + length * length) / 12.0, cylinder * r2 / 2.0
    if kind == mujoco.mjtGeom.mjGEOM_CYLINDER:
        return cylinder, np.array([transverse, transverse, axial])
    sphere = 4.0 / 3.0 * np.pi * r2 * radius  # the two hemispherical caps
    transverse += sphere * (2.0 * r2 / 5.0 + length * length / 4.0 + 3.0 * length * radius / 8.0)
    return cylinder + sphere, np.array([transverse, transverse, axial + sphere * 2.0 * r2 / 5.0])


def _along_limb(points: np.ndarray, centre: np.ndarray, axis: np.ndarray, half: float, anchor: float,
                scale: float) -> np.ndarray:
    """Where points of a limb's body go when its segment (``centre`` +- ``half`` along the unit ``axis``) is
    scaled by ``scale`` about the axial coordinate ``anchor``: points along the segment scale with it,
    points beyond an end move with that end."""
    t = (points - centre) @ axis  # axial coordinate from the segment's centre
    shift = np.where(t > half, (scale - 1.0) * (half - anchor),
                     np.where(t < -half, (scale - 1.0) * (-half - anchor), (scale - 1.0) * (t - anchor)))
    return points + shift[:, None] * axis


@dataclass(frozen=True)
class _Limb:
    """A capsule or cylinder geom that alone makes up its body, as compiled (see :func:`_geom_length`)."""

    geom: int
    body: int
    axis: np.ndarray          # unit vector along the segment, in the body frame
    centre: np.ndarray        # the geom's position in the body frame
    half: float               # half-length of the segment
    radius: float
    anchor: float             # axial coordinate (from the centre) that stays put: the body's hinge, clipped
    to_principal: np.ndarray  # geom frame -> the body's principal inertia frame
    children: np.ndarray      # child bodies and their positions
    child_pos: np.ndarray
    sites: np.ndarray         # the body's sites and their positions
    site_pos: np.ndarray
    ipos: np.ndarray          # the body's centre of mass
    aabb: np.ndarray          # the geom's bounding box (centre, half-extents) in its own frame

    def shape(self, kind: int, half: float) -> tuple[float, np.ndarray]:
        """Volume and principal moments (in the body's principal frame) at unit density, at half-length ``half``."""
        volume, moments = _segment_volume_inertia(kind, self.radius, half)
        return volume, np.diag(self.to_principal @ np.diag(moments) @ self.to_principal.T)


def _limb(model: mujoco.MjModel, g: int) -> _Limb:
    body = int(model.geom_bodyid[g])
    rotation, principal = np.zeros(9), np.zeros(9)
    mujoco.mju_quat2Mat(rotation, model.geom_quat[g])
    mujoco.mju_quat2Mat(principal, model.body_iquat[body])
    rotation = rotation.reshape(3, 3)
    axis, centre, half = rotation[:, 2].copy(), model.geom_pos[g].copy(), float(model.geom_size[g, 1])
    hinges = np.flatnonzero((model.jnt_bodyid == body) & (model.jnt_type != mujoco.mjtJoint.mjJNT_SLIDE)
                            & (model.jnt_type != mujoco.mjtJoint.mjJNT_FREE))
    anchor = model.jnt_pos[hinges[0]] if hinges.size else np.zeros(3)  # where the limb turns
    children = np.flatnonzero((model.body_parentid == body) & (np.arange(model.nbody) != body))
    sites = np.flatnonzero(model.site_bodyid == body)
    return _Limb(g, body, axis, centre, half, float(model.geom_size[g, 0]),
                 float(np.clip((anchor - centre) @ axis, -half, half)), principal.reshape(3, 3).T @ rotation,
                 children, model.body_pos[children].copy(), sites, model.site_pos[sites].copy(),
                 model.body_ipos[body].copy(), model.geom_aabb[g].copy())


def _geom_length(model: mujoco.MjModel) -> Binding:
    """Binds the length of each capsule or cylinder geom that alone makes up its body's mass (a limb).

    The end nearest the body's joint stays where it is; the geom grows or shrinks from it, and whatever the
    body carries beyond the geom's ends (child bodies, sites) moves with the far end, so the limb's children
    stay attached at its tip. Mass scales with the geom's volume (constant density), and the inertia and
    centre of mass follow the new shape; both compose with the ``mass`` kind's scale, which is written first.
    A limb at its nominal length that the model already holds nominal is skipped: the ``mass`` kind's writes
    (every reset of a mass randomization) then cost nothing here.
    """
    segment = np.isin(model.geom_type, (mujoco.mjtGeom.mjGEOM_CAPSULE, mujoco.mjtGeom.mjGEOM_CYLINDER))
    geoms_in_body = np.bincount(model.geom_bodyid, minlength=model.nbody)
    ids = np.array([g for g in np.flatnonzero(segment)
                    if geoms_in_body[model.geom_bodyid[g]] == 1 and model.body_mass[model.geom_bodyid[g]] > 0
                    and np.allclose(model.body_ipos[model.geom_bodyid[g]], model.geom_pos[g], atol=1e-9)], dtype=int)
    limbs = [_limb(model, int(g)) for g in ids]
    kinds = [int(model.geom_type[limb.geom]) for limb in limbs]
    nominal_length = np.array([2.0 * limb.half for limb in limbs])
    nominal_shapes = [limb.shape(kind, limb.half) for limb, kind in zip(limbs, kinds)]
    at_nominal = np.ones(len(limbs), dtype=bool)  # limbs the model holds at their compiled shape

    def write(values: np.ndarray) -> None:
        scales = values / nominal_length
        for i in np.flatnonzero((scales != 1.0) | ~at_nominal):
            limb, scale, g, body = limbs[i], scales[i], limbs[i].geom, limbs[i].body
            new_half = limb.half * scale
            volume, moments = limb.shape(kinds[i], new_half)
            model.geom_size[g, 1] = new_half
            model.geom_pos[g] = _along_limb(limb.centre[None], limb.centre, limb.axis, limb.half, limb.anchor, scale)[0]
            model.body_ipos[body] = limb.ipos + (model.geom_pos[g] - limb.centre)
            model.body_mass[body] *= volume / nominal_shapes[i][0]
            model.body_inertia[body] *= moments / nominal_shapes[i][1]
            model.body_pos[limb.children] = _along_limb(limb.child_pos, limb.centre, limb.axis, limb.half, limb.anchor,
                                                        scale)
            model.site_pos[limb.sites] = _along_limb(limb.site_pos, limb.centre, limb.axis, limb.half, limb.anchor, scale)
            # bounding sphere about the centre: a capsule's r + h, a cylinder's hypot(r, h)
            model.geom_rbound[g] = (limb.radius + new_half if kinds[i] == mujoco.mjtGeom.mjGEOM_CAPSULE
                                    else np.hypot(limb.radius, new_half))
            model.geom_aabb[g] = limb.aabb
            model.geom_aabb[g, 5] += new_half - limb.half  # the geom frame's z half-extent
            at_nominal[i] = scale == 1.0

    return Binding(_names(model, _OBJ.mjOBJ_GEOM, ids), lambda: 2.0 * model.geom_size[ids, 1], write)


PARAMETER_KINDS: dict[str, ParameterKind] = {kind.name: kind for kind in (
    ParameterKind("mass", "masses", ("body_mass", "body_inertia"), _body_mass, needs_set_const=True),
    ParameterKind("friction", "frictions", ("geom_friction",), _geom_friction),
    ParameterKind("damping", "dampings", ("dof_damping",), partial(_joint_dofs, "dof_damping"), inclusive=True),
    ParameterKind("armature", "armatures", ("dof_armature",), partial(_joint_dofs, "dof_armature"), inclusive=True,
                  needs_set_const=True),
    ParameterKind("gain", "gains", ("actuator_gainprm", "actuator_biasprm"), _actuator_gain),
    ParameterKind("gravity", "gravity", ("opt.gravity",), _gravity, lower_bound=-np.inf, inclusive=True,
                  handle="gravity"),
    ParameterKind("range", "ranges", ("jnt_range",), _joint_range),
    ParameterKind("length", "lengths", ("geom_size", "geom_pos", "geom_rbound", "geom_aabb", "body_ipos", "body_mass",
                                        "body_inertia", "body_pos", "site_pos"), _geom_length, needs_set_const=True,
                  composes_with="mass"),
)}
"""Every kind by name, in parameter-vector order: a new kind is one entry (and its ``bind`` function)."""
KINDS = tuple(PARAMETER_KINDS)
GROUPS = {kind.group: name for name, kind in PARAMETER_KINDS.items() if kind.group != name}


class ParameterSet:
    """The randomizable physical parameters of one compiled model, with fast vectorized writes.

    Args:
        model: The compiled model to read nominal values from and write into.
        data: Its data, needed by ``mj_setConst`` to recompute derived quantities.
    """

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        self.model = model
        self.data = data
        bindings = [(kind, kind.bind(model)) for kind in PARAMETER_KINDS.values()]
        self.parameters: tuple[Parameter, ...] = tuple(
            Parameter(kind.handle.format(element=element, kind=kind.name), kind.name, element, float(value))
            for kind, binding in bindings
            for element, value in zip(binding.elements, binding.read())
        )
        self.names: tuple[str, ...] = tuple(p.name for p in self.parameters)
        if len(set(self.names)) != len(self.names):
            duplicates = sorted({n for n in self.names if self.names.count(n) > 1})
            raise ValueError(f"model has duplicate parameter names {duplicates}; give its elements unique names")
        self.nominal = np.array([p.nominal for p in self.parameters], dtype=np.float64)
        self._index = {name: i for i, name in enumerate(self.names)}
        self.kinds = np.array([p.kind for p in self.parameters])
        ends = np.cumsum([len(b.elements) for _, b in bindings]).tolist()
        self._bound = [(kind, b, slice(end - len(b.elements), end)) for (kind, b), end in zip(bindings, ends)]
        self.groups: dict[str, np.ndarray] = {kind.group: np.arange(s.start, s.stop) for kind, _, s in self._bound}
        self._lower = np.array([PARAMETER_KINDS[k].lower_bound for k in self.kinds])
        self._inclusive = np.array([PARAMETER_KINDS[k].inclusive for k in self.kinds], dtype=bool)
        self._nominal_fields = {f: _field(model, f).copy() for kind, _ in bindings for f in kind.fields}

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
        """Reads the parameter vector currently in the model (a body whose limb length changed reads its mass
        value times the limb's volume ratio)."""
        return np.concatenate([binding.read() for _, binding, _ in self._bound]).astype(np.float64)

    def apply(self, values: np.ndarray, kinds: frozenset[str] | None = None) -> None:
        """Writes a parameter vector into the model and recomputes derived quantities.

        Args:
            values: One value per parameter (see :attr:`names`).
            kinds: Write only these kinds (the others must hold their current values); None writes all.

        Call before ``mj_resetData`` (the env's reset): ``mj_setConst`` overwrites the state.
        """
        if kinds is not None:
            kinds = kinds | {k.composes_with for k in PARAMETER_KINDS.values() if k.name in kinds and k.composes_with}
            kinds = kinds | {k.name for k in PARAMETER_KINDS.values() if k.composes_with in kinds}
        set_const = False
        for kind, binding, span in self._bound:
            if kinds is None or kind.name in kinds:
                binding.write(values[span])
                set_const |= kind.needs_set_const
        if set_const:
            mujoco.mj_setConst(self.model, self.data)

    def restore(self) -> None:
        """Writes the nominal values back, bit for bit, and recomputes derived quantities."""
        for name, value in self._nominal_fields.items():
            _field(self.model, name)[:] = value
        mujoco.mj_setConst(self.model, self.data)

    def as_dict(self, values: np.ndarray) -> dict[str, float]:
        """Maps a parameter vector to ``{name: value}``."""
        return dict(zip(self.names, values.tolist()))

    def below_bounds(self, indices: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Mask of ``values`` (one per parameter in ``indices``) that are NaN or below their kind's lower bound."""
        low, inclusive = self._lower[indices], self._inclusive[indices]
        return np.isnan(values) | (values < low) | ((values == low) & ~inclusive)

    def rule(self, index: int) -> str:
        """The validity rule of a parameter, e.g. ``a mass must be > 0``."""
        return PARAMETER_KINDS[str(self.kinds[index])].rule

    def check_values(self, values: np.ndarray) -> None:
        """Raises ``ValueError`` naming the first parameter whose value is physically invalid."""
        bad = np.flatnonzero(~np.isfinite(values) | self.below_bounds(np.arange(len(self)), values))
        if bad.size:
            i = bad[0]
            raise ValueError(f"invalid value {values[i]:g} for parameter '{self.names[i]}': {self.rule(i)}")


def compact_index(ids: np.ndarray) -> slice | np.ndarray:
    """A slice equivalent to ``ids`` when they are contiguous and increasing, else ``ids``."""
    if ids.size and np.array_equal(ids, np.arange(ids[0], ids[0] + ids.size)):
        return slice(int(ids[0]), int(ids[0]) + ids.size)
    return ids


def _names(model: mujoco.MjModel, obj: mujoco.mjtObj, ids: np.ndarray) -> list[str]:
    prefix = obj.name.removeprefix("mjOBJ_").lower()
    return [mujoco.mj_id2name(model, obj, int(i)) or f"{prefix}{i}" for i in ids]


def _actuator_names(model: mujoco.MjModel) -> list[str]:
    """Each actuator's own name, else the name of the joint it drives, else ``actuator<id>``."""
    joints = _names(model, _OBJ.mjOBJ_JOINT, np.arange(model.njnt))
    names = []
    for i in range(model.nu):
        name = mujoco.mj_id2name(model, _OBJ.mjOBJ_ACTUATOR, i)
        if not name and model.actuator_trntype[i] == mujoco.mjtTrn.mjTRN_JOINT:
            name = joints[model.actuator_trnid[i, 0]]
        names.append(name or f"actuator{i}")
    return names


def _field(model: mujoco.MjModel, path: str) -> np.ndarray:
    return reduce(getattr, path.split("."), model)
