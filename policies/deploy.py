"""Torch-free deployment runtime: load an exported policy bundle and act with numpy and onnxruntime only.

A bundle is a folder written by :func:`sim2real.export.export_bundle`::

    policy.onnx    raw observation (float64, (N, obs_dim)) -> action (float32, (N, action_dim)); observation
                   normalization, action clipping / unscaling are inside the graph
    policy.pt      the same function as TorchScript (for torch users; not read here)
    bundle.json    spaces, normalization statistics, action processing, control period, provenance,
                   parity figures and the sha256 of every model file

A policy with memory (an observation history or an LSTM) is exported with its state explicit: the graph
takes ``(obs, state)`` and returns ``(action, next_state)``, and ``bundle.json``'s ``state`` entry says the
state's size, dtype, layout, and what to feed at an episode start (zeros). :class:`DeployedPolicy` keeps
the state between calls; call ``reset()`` at every episode start.

Example::

    from sim2real.policies.deploy import DeployedPolicy

    policy = DeployedPolicy.load("bundles/hopper")      # verifies the checksums
    policy.reset()                                      # a new episode (clears the state, if any)
    action = policy.act(obs)                            # obs: (obs_dim,) or (N, obs_dim) floats

This module must stay importable without torch, stable-baselines3 or pickle: it imports only the
standard library, numpy and onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

BUNDLE_FILE = "bundle.json"
ONNX_FILE = "policy.onnx"
TORCHSCRIPT_FILE = "policy.pt"
BUNDLE_FORMAT = "sim2real-policy-bundle"
BUNDLE_VERSION = 1
INPUT_NAME = "obs"
OUTPUT_NAME = "action"
STATE_INPUT_NAME = "state"
STATE_OUTPUT_NAME = "next_state"
STATE_DTYPES = {"float32": np.float32, "float64": np.float64}
MODEL_FILES = {"onnx": ONNX_FILE, "torchscript": TORCHSCRIPT_FILE}
REQUIRED_KEYS = ("files", "observation_space", "action_space", "control_period_s", "env")


class BundleError(ValueError):
    """A bundle folder that is missing, incomplete, of an unknown format, or whose files fail their checksums."""


def sha256_file(path: str | Path) -> str:
    """Hex sha256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(bundle_dir: str | Path) -> dict[str, Any]:
    """Reads and checks ``bundle.json`` of ``bundle_dir`` (format, version, file entries).

    Raises:
        BundleError: The folder or its ``bundle.json`` is missing, unreadable or of another format.
    """
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / BUNDLE_FILE
    if not bundle_dir.is_dir():
        raise BundleError(f"bundle folder '{bundle_dir}' does not exist")
    if not path.is_file():
        raise BundleError(f"'{bundle_dir}' is not a policy bundle: {BUNDLE_FILE} is missing")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"'{path}' is not readable JSON: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"'{path}' is not a {BUNDLE_FORMAT} manifest")
    if manifest.get("version") != BUNDLE_VERSION:
        raise BundleError(f"'{path}': bundle version {manifest.get('version')!r} is not supported; "
                          f"this runtime reads version {BUNDLE_VERSION}")
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise BundleError(f"'{path}' lacks {missing}")
    files = manifest.get("files")
    if not isinstance(files, dict) or "onnx" not in files:
        raise BundleError(f"'{path}' lists no onnx model under 'files'")
    check_manifest_fields(path, manifest)
    return manifest


def check_manifest_fields(path: Path, manifest: dict[str, Any]) -> None:
    """Checks the types of the fields the runtime reads, so a hand-edited ``bundle.json`` fails at load.

    Raises:
        BundleError: A file entry that is not ``{"path": str, "sha256": str}``, a space without a
            one-dimensional positive ``shape``, a ``control_period_s`` that is not a positive number, or an
            ``env`` without a string ``id``.
    """
    for key, entry in manifest["files"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) \
                or not isinstance(entry.get("sha256"), str):
            raise BundleError(f"'{path}': files.{key}={entry!r} must be an object with string 'path' and 'sha256'")
    for key in ("observation_space", "action_space"):
        _check_box(path, key, manifest[key])
    period = manifest["control_period_s"]
    if isinstance(period, bool) or not isinstance(period, (int, float)) or not math.isfinite(period) or period <= 0:
        raise BundleError(f"'{path}': control_period_s={period!r} must be a number > 0 (seconds)")
    env = manifest["env"]
    if not isinstance(env, dict) or not any(isinstance(env.get(key), str) for key in ("id", "entry_point")):
        raise BundleError(f"'{path}': env={env!r} must be an object with a string 'id' or 'entry_point'")
    state = manifest.get("state")
    if state is not None:
        dim = state.get("dim") if isinstance(state, dict) else None
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1 or state.get("dtype") not in STATE_DTYPES:
            raise BundleError(f"'{path}': state={state!r} must be null or an object with an integer 'dim' >= 1 and "
                              f"a 'dtype' in {sorted(STATE_DTYPES)}")


def _check_box(path: Path, key: str, space: Any) -> None:
    shape = space.get("shape") if isinstance(space, dict) else None
    if not (isinstance(shape, list) and len(shape) == 1 and isinstance(shape[0], int)
            and not isinstance(shape[0], bool) and shape[0] >= 1):
        raise BundleError(f"'{path}': {key}={space!r} must be an object whose 'shape' is [n] with an integer n >= 1")
    for bound in ("low", "high"):
        values = space.get(bound)
        if values is None:
            continue
        if not isinstance(values, list) or len(values) != shape[0] or not all(
                v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
            raise BundleError(f"'{path}': {key}.{bound} must be a list of {shape[0]} numbers (null: unbounded)")


def verify_checksums(bundle_dir: str | Path, manifest: dict[str, Any]) -> None:
    """Checks every file listed in ``manifest['files']`` against its recorded sha256.

    Raises:
        BundleError: A file is missing, lies outside the bundle (a path or a symbolic link leading out of
            it), or its bytes differ from the record.
    """
    verified_files(bundle_dir, manifest)


def verified_files(bundle_dir: str | Path, manifest: dict[str, Any]) -> dict[str, bytes]:
    """The bytes of every file listed in ``manifest['files']``, by file name, each checked against its sha256.

    The bytes returned are the bytes hashed, so a file swapped after the check is never used.

    Raises:
        BundleError: As :func:`verify_checksums`.
    """
    bundle_dir = Path(bundle_dir)
    inside = bundle_dir.resolve()
    contents: dict[str, bytes] = {}
    for key, entry in manifest["files"].items():
        name = str(entry.get("path", "")) if isinstance(entry, dict) else ""
        if not name or Path(name).name != name or name in (".", ".."):
            raise BundleError(f"bundle '{bundle_dir}': file entry '{key}' has an invalid path {name!r} "
                              "(must be a plain file name inside the bundle)")
        path = bundle_dir / name
        if not path.is_file():
            raise BundleError(f"bundle '{bundle_dir}': {name} is missing")
        if path.resolve().parent != inside:
            raise BundleError(f"bundle '{bundle_dir}': {name} is a link to '{path.resolve()}', outside the bundle; "
                              "copy the file into the bundle instead")
        data = path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != entry.get("sha256"):
            raise BundleError(f"bundle '{bundle_dir}': checksum mismatch for {name} (sha256 {actual}, "
                              f"{BUNDLE_FILE} records {entry.get('sha256')}); the file was modified or corrupted")
        contents[name] = data
    return contents


def _all_finite(obs: np.ndarray, single: bool) -> bool:
    # a dot product is cheaper than isfinite().all() on one observation; it is finite unless an entry is
    # NaN or inf, or the sum overflows (then the exact check decides)
    if single and math.isfinite(obs @ obs):
        return True
    return bool(np.isfinite(obs).all())


def _open_session(bundle_dir: Path, manifest: dict[str, Any], files: dict[str, bytes],
                  options: ort.SessionOptions) -> ort.InferenceSession:
    """An onnxruntime session over the verified bytes, written to a private folder.

    onnxruntime resolves a model's external-data files relative to the model and refuses paths that leave
    its folder; the private folder holds only the files ``bundle.json`` lists (checksummed), so external
    data that the manifest does not list, or that changed after the check, cannot be loaded.
    """
    model_name = manifest["files"]["onnx"]["path"]
    with tempfile.TemporaryDirectory(prefix="sim2real-bundle-", ignore_cleanup_errors=True) as private:
        for name, data in files.items():
            if name != manifest["files"].get("torchscript", {}).get("path"):
                (Path(private) / name).write_bytes(data)
        try:
            return ort.InferenceSession(str(Path(private) / model_name), sess_options=options,
                                        providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for malformed models
            raise BundleError(f"bundle '{bundle_dir}': onnxruntime cannot load {model_name} (external-data files "
                              f"must be listed with their sha256 under 'files' in {BUNDLE_FILE}): {err}") from None


class DeployedPolicy:
    """An exported policy that maps raw observations to actions with onnxruntime.

    Build it with :meth:`load`. Actions equal the source policy's ``model.predict(obs, deterministic=True)``
    after its observation normalization, within the parity recorded in ``manifest['parity']``.

    A stateful policy (``manifest['state']`` set: an observation history or an LSTM) keeps its state here
    between calls: :meth:`reset` at every episode start; a batch of N observations is N robots stepping
    together, and the state follows that batch until the next :meth:`reset`.

    Attributes:
        path: The bundle folder.
        manifest: The content of ``bundle.json``.
        obs_dim: Length of one observation.
        action_dim: Length of one action.
        state_dim: Length of the state carried between steps (0: memoryless).
    """

    def __init__(self, session: ort.InferenceSession, manifest: dict[str, Any], path: Path) -> None:
        self.path = path
        self.manifest = manifest
        self._session = session
        self.obs_dim = int(manifest["observation_space"]["shape"][0])
        self.action_dim = int(manifest["action_space"]["shape"][0])
        self._single_shape = (self.obs_dim,)
        self._feed_shape = (1, self.obs_dim)
        state = manifest.get("state")
        self.state_dim = int(state["dim"]) if state else 0
        self._state_dtype = STATE_DTYPES[state["dtype"]] if state else np.float64
        self._state: np.ndarray | None = None
        self._outputs = [OUTPUT_NAME, STATE_OUTPUT_NAME] if self.state_dim else [OUTPUT_NAME]
        self._check_io()

    @property
    def stateful(self) -> bool:
        """The policy carries a state between steps (call :meth:`reset` at every episode start)."""
        return self.state_dim > 0

    @property
    def state(self) -> np.ndarray | None:
        """The state the next call starts from, ``(N, state_dim)`` (None after :meth:`reset`: zeros)."""
        return self._state

    def reset(self, episodes: np.ndarray | list[int] | None = None) -> None:
        """Starts new episodes from the zero state (nothing to do if memoryless).

        Args:
            episodes: Which episodes of the batch being stepped restart (robots whose episode ended while
                the others go on): a boolean mask of the batch size, or row indices. None (the default)
                restarts all of them, and the next call may then have any batch size.

        Raises:
            ValueError: a mask of another size than the batch, or an index outside it (checked against the
                batch being stepped: before the first call every episode starts from zeros anyway).
        """
        if episodes is None:
            self._state = None
            return
        rows = np.asarray(episodes)
        if self._state is None or rows.size == 0:  # every episode already starts from zeros, or none restarts
            return
        n = self._state.shape[0]
        if rows.dtype == bool:
            if rows.shape != (n,):
                raise ValueError(f"reset mask of shape {rows.shape} does not match the {n} episode(s) being stepped")
        elif rows.size and (rows.dtype.kind not in "iu" or rows.min() < -n or rows.max() >= n):
            raise ValueError(f"reset indices {rows.tolist()} are not rows of the {n} episode(s) being stepped")
        state = self._state.copy()
        state[rows] = 0
        self._state = state

    @classmethod
    def load(cls, path: str | Path, threads: int = 1) -> DeployedPolicy:
        """Loads a bundle folder (or its ``bundle.json``) after verifying the model checksums.

        Args:
            path: The bundle folder, or the path of its ``bundle.json``.
            threads: onnxruntime intra-op threads; 1 gives the lowest latency for single observations.

        Raises:
            BundleError: Not a bundle, unknown format, or a file that does not match its checksum.
        """
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads={threads!r} must be a positive integer")
        bundle_dir = Path(path)
        if bundle_dir.name == BUNDLE_FILE and bundle_dir.is_file():
            bundle_dir = bundle_dir.parent
        manifest = read_manifest(bundle_dir)
        files = verified_files(bundle_dir, manifest)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = _open_session(bundle_dir, manifest, files, options)
        return cls(session, manifest, bundle_dir)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic action(s) for raw (unnormalized) observations.

        Args:
            obs: One observation of shape ``(obs_dim,)`` or a batch ``(N, obs_dim)``, of a float dtype.

        Returns:
            float32 actions of shape ``(action_dim,)`` or ``(N, action_dim)``.

        Raises:
            TypeError: ``obs`` is not of a floating-point dtype.
            ValueError: Wrong shape, or NaN / inf entries.
        """
        obs = np.asarray(obs)
        if obs.dtype.kind != "f":
            raise TypeError(f"observation dtype {obs.dtype} is not a float dtype; pass float32 or float64 values")
        single = obs.shape == self._single_shape
        if not single and (obs.ndim != 2 or obs.shape[1] != self.obs_dim):
            raise ValueError(f"observation shape {obs.shape} does not match ({self.obs_dim},) or (N, {self.obs_dim})")
        if not _all_finite(obs, single):
            bad = np.argwhere(~np.isfinite(obs))[:5].tolist()
            raise ValueError(f"observation contains NaN or inf (at indices {bad}); refusing to act on it")
        feed = obs.reshape(self._feed_shape) if single else obs
        if feed.dtype != np.float64:
            feed = feed.astype(np.float64)
        if self.state_dim:
            action = self._step_with_state(feed)
        else:
            action = self._session.run(self._outputs, {INPUT_NAME: feed})[0]
        return action[0] if single else action

    def _step_with_state(self, feed: np.ndarray) -> np.ndarray:
        state = self._state
        if state is None:
            state = np.zeros((feed.shape[0], self.state_dim), self._state_dtype)
        elif state.shape[0] != feed.shape[0]:
            raise ValueError(f"this stateful policy is stepping {state.shape[0]} episode(s) but got a batch of "
                             f"{feed.shape[0]}; call reset() to start new episodes")
        action, self._state = self._session.run(self._outputs, {INPUT_NAME: feed, STATE_INPUT_NAME: state})
        return action

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Same as :meth:`act`."""
        return self.act(obs)

    @property
    def control_period(self) -> float:
        """Seconds between actions the policy was trained with (the env's ``dt``)."""
        return float(self.manifest["control_period_s"])

    @property
    def env_id(self) -> str:
        """The Gymnasium id (or entry point) of the env the policy was trained in."""
        env = self.manifest["env"]
        return str(env.get("id") or env.get("entry_point"))

    @property
    def action_low(self) -> np.ndarray:
        """Lower action bounds."""
        return np.asarray(self.manifest["action_space"]["low"], np.float32)

    @property
    def action_high(self) -> np.ndarray:
        """Upper action bounds."""
        return np.asarray(self.manifest["action_space"]["high"], np.float32)

    def _check_io(self) -> None:
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        expected_in = [INPUT_NAME, STATE_INPUT_NAME] if self.state_dim else [INPUT_NAME]
        if [i.name for i in inputs] != expected_in or [o.name for o in outputs] != self._outputs:
            raise BundleError(f"bundle '{self.path}': the ONNX model's inputs/outputs "
                              f"{[i.name for i in inputs]}/{[o.name for o in outputs]} are not {expected_in}/{self._outputs}"
                              f" ({BUNDLE_FILE} declares {'a state of ' + str(self.state_dim) if self.state_dim else 'no state'})")
        if self.state_dim and (inputs[1].shape[-1] != self.state_dim or outputs[1].shape[-1] != self.state_dim):
            raise BundleError(f"bundle '{self.path}': the ONNX model's state is {inputs[1].shape} -> {outputs[1].shape}, "
                              f"but {BUNDLE_FILE} declares state dim {self.state_dim}")
        if inputs[0].shape[-1] != self.obs_dim or outputs[0].shape[-1] != self.action_dim:
            raise BundleError(f"bundle '{self.path}': the ONNX model maps {inputs[0].shape} -> {outputs[0].shape}, "
                              f"but {BUNDLE_FILE} declares obs_dim {self.obs_dim} and action_dim {self.action_dim}")

    def __repr__(self) -> str:
        state = f", state_dim={self.state_dim}" if self.state_dim else ""
        return (f"DeployedPolicy('{self.path}', env={self.env_id}, obs_dim={self.obs_dim}, "
                f"action_dim={self.action_dim}{state}, dt={self.control_period})")
