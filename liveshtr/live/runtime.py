"""The exported step run by onnxruntime: inputs and outputs bound once, recurrent state carried between calls.

A step is one `run_with_iobinding` call: the inputs are numpy arrays bound in place (the generator writes into
them), the outputs land in preallocated arrays, and the recurrent state ping-pongs between two pairs of buffers
that stay where the model runs. On CUDA that keeps h and c on the GPU from one step to the next; only the frame
and the controls go up and the predicted frame comes back. `iobinding=False` runs the plain `session.run` path
(state round-trips through numpy) for comparison in `liveshtr bench`.

No torch here: this is the serving path.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import onnxruntime as ort

from liveshtr.bundle import Bundle, BundleError
from liveshtr.errors import LiveshtrError

DEVICES = ("auto", "cpu", "cuda")
PRECISION_CHOICES = ("auto", "float32", "int8")
ort.set_default_logger_severity(4)  # fatal only: failed provider loads are reported by us, in one line


class DeviceError(LiveshtrError):
    """The requested compute device cannot be used."""


def session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Worker threads sleep between steps instead of spinning: a spinning pool would fight the audio threads (and
    # anything else the performer runs) for the cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def default_threads(bundle: Bundle, precision: str = "float32") -> int:
    """One thread unless the step's weights are large enough to split: float32 from hidden 512, int8 from 1024
    (int8 2x512 steps in 180 us on one thread and gains nothing from a second)."""
    return 2 if bundle.hidden >= (1024 if precision == "int8" else 512) else 1


_cuda_libraries_loaded = False


def load_cuda_libraries() -> None:
    """Load the CUDA and cuDNN libraries that pip installed (the nvidia-* packages torch's CUDA build brings)
    before the first CUDA session: the dynamic loader does not search there, and
    without them the CUDA provider cannot start unless torch was imported first, which the serving path never
    does. onnxruntime's own `preload_dlls`, once, quietly: a library it cannot find is what the session that cannot
    start then reports, in one line."""
    global _cuda_libraries_loaded
    if _cuda_libraries_loaded or not hasattr(ort, "preload_dlls"):
        return
    _cuda_libraries_loaded = True
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
        ort.preload_dlls(msvc=False)


def _load(path, options: ort.SessionOptions, providers: list[str]) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for a damaged graph
        raise BundleError(f"{path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from None


def make_session(
    bundle: Bundle, device: str = "cpu", threads: int | None = None, precision: str = "float32"
) -> tuple[ort.InferenceSession, str, str]:
    """A session on `device` ('cpu', 'cuda' or 'auto'); returns it with the device it really runs on ('cpu' or
    'cuda') and the precision of its weights ('float32' or 'int8').

    An explicit 'cuda' that cannot run (no CUDA provider in this onnxruntime, or no usable GPU or CUDA libraries
    behind it) raises DeviceError; 'auto' falls back to the CPU and the caller says so. Precision 'auto' is int8
    on the CPU when the bundle has the int8 graph (the step is bound by reading its weights) and float32 on CUDA.
    """
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if precision not in PRECISION_CHOICES:
        raise DeviceError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISION_CHOICES)}")
    options = session_options(threads or default_threads(bundle, "float32"))
    # int8 runs on the CPU only: asked for with 'auto', the CPU is where it runs
    want_cuda = (device == "cuda" or (device == "auto" and precision != "int8")) and (
        "CUDAExecutionProvider" in ort.get_available_providers()
    )
    if device == "cuda" and not want_cuda:
        raise DeviceError(
            "--device cuda: this onnxruntime has no CUDA provider (install onnxruntime-gpu); use --device cpu"
        )
    if want_cuda:
        if precision == "int8":
            raise DeviceError("--precision int8 runs on the CPU only; use --precision float32 with --device cuda")
        load_cuda_libraries()
        session = _load(bundle.model_path("float32"), options, ["CUDAExecutionProvider", "CPUExecutionProvider"])
        if session.get_providers()[0] == "CUDAExecutionProvider":
            return session, "cuda", "float32"
        if device == "cuda":
            raise DeviceError(
                "--device cuda: the CUDA provider could not start (no usable NVIDIA GPU or CUDA libraries); "
                "use --device cpu or auto"
            )
    if precision == "auto":
        precision = "int8" if bundle.has_int8 else "float32"
    options = session_options(threads or default_threads(bundle, precision))
    return _load(bundle.model_path(precision), options, ["CPUExecutionProvider"]), "cpu", precision


class StepModel:
    """One model step at a time. Write the inputs into `feeds` (not h_in/c_in), call `step()`, read `outputs`."""

    STATE = ("h_in", "c_in")

    def __init__(
        self,
        bundle: Bundle,
        device: str = "cpu",
        threads: int | None = None,
        iobinding: bool = True,
        session: ort.InferenceSession | None = None,
        precision: str = "float32",
    ):
        self.bundle = bundle
        if session is None:
            session, device, precision = make_session(bundle, device, threads, precision)
        self.threads = threads or default_threads(bundle, precision)
        self.session, self.device, self.precision = session, device, precision
        self.iobinding = iobinding
        shapes = {n: t["shape"] for n, t in bundle.meta["tensors"].items()}
        names = {i.name for i in session.get_inputs()}
        if names != set(bundle.meta["inputs"]) or not set(self.STATE) <= names:
            raise BundleError(f"{bundle.onnx_path}: graph inputs {sorted(names)} are not the step's inputs")
        # every input but the recurrent state: the frame, the noises, the clock and the performer's controls
        self.control_inputs = tuple(n for n in bundle.meta["inputs"] if n not in self.STATE)
        self.feeds: dict[str, np.ndarray] = {n: np.zeros(shapes[n], dtype=np.float32) for n in self.control_inputs}
        self.feeds["temperature"][:] = 1.0
        self.output_names = [o.name for o in session.get_outputs()]
        self.outputs: dict[str, np.ndarray] = {
            n: np.zeros(shapes[n], dtype=np.float32) for n in self.output_names if n not in ("h_out", "c_out")
        }
        state_shape = shapes["h_in"]
        self._host_state = {n: np.zeros(state_shape, dtype=np.float32) for n in ("h_in", "c_in")}  # plain path
        if iobinding:
            self._bind(state_shape)

    def _bind(self, state_shape: list[int]) -> None:
        def value(array: np.ndarray, where: str) -> ort.OrtValue:
            return ort.OrtValue.ortvalue_from_numpy(array, where, 0)

        # Two pairs of state buffers on the model's device; step i reads pair i%2 and writes pair (i+1)%2. Each has
        # memory of its own: on the CPU an OrtValue wraps its numpy array without copying, so one array behind all
        # four would make h and c one buffer, read and written by the same step.
        self._state_arrays = [np.zeros(state_shape, dtype=np.float32) for _ in range(4)]  # kept alive with them
        arrays = iter(self._state_arrays)
        self._state = [[value(next(arrays), self.device) for _ in range(2)] for _ in range(2)]  # [pair][h, c]
        host = {n: value(a, "cpu") for n, a in {**self.feeds, **self.outputs}.items()}  # share numpy memory
        self._bindings = []
        for i in range(2):
            binding = self.session.io_binding()
            for name in self.control_inputs:
                binding.bind_ortvalue_input(name, host[name])
            for name in self.outputs:
                binding.bind_ortvalue_output(name, host[name])
            (h_in, c_in), (h_out, c_out) = self._state[i], self._state[1 - i]
            binding.bind_ortvalue_input("h_in", h_in)
            binding.bind_ortvalue_input("c_in", c_in)
            binding.bind_ortvalue_output("h_out", h_out)
            binding.bind_ortvalue_output("c_out", c_out)
            self._bindings.append(binding)
        self._host_values = host  # keep the OrtValues (and the arrays they wrap) alive with the bindings
        self._turn = 0

    def reset_state(self) -> None:
        self.set_state(0.0, 0.0)

    def set_state(self, h: float | np.ndarray, c: float | np.ndarray) -> None:
        """Overwrite the recurrent state (zeros to reset; tests inject non-finite values here)."""
        shape = self._host_state["h_in"].shape
        h = np.broadcast_to(np.asarray(h, dtype=np.float32), shape)
        c = np.broadcast_to(np.asarray(c, dtype=np.float32), shape)
        self._host_state["h_in"][:] = h
        self._host_state["c_in"][:] = c
        if self.iobinding:
            h_value, c_value = self._state[self._turn]
            h_value.update_inplace(np.ascontiguousarray(h))
            c_value.update_inplace(np.ascontiguousarray(c))

    def step(self) -> dict[str, np.ndarray]:
        """Run one step on the current feeds; returns `outputs` (the same arrays every time, overwritten)."""
        if self.iobinding:
            self.session.run_with_iobinding(self._bindings[self._turn])
            self._turn ^= 1
            return self.outputs
        arrays = self.session.run(self.output_names, {**self.feeds, **self._host_state})
        result = dict(zip(self.output_names, arrays, strict=True))
        for name, array in self.outputs.items():
            array[:] = result[name]
        self._host_state["h_in"], self._host_state["c_in"] = result["h_out"], result["c_out"]
        return self.outputs
