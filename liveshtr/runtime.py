"""The exported step run by onnxruntime: feeds preallocated once, recurrent state carried between calls.

No torch here: this is the serving path.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from liveshtr.bundle import Bundle, BundleError


def make_session(bundle: Bundle, threads: int = 1) -> ort.InferenceSession:
    """A CPU session tuned for one small step at a time (one thread: the graph is too small to split)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: provider-loading chatter is not for performers
    try:
        return ort.InferenceSession(str(bundle.onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for a damaged graph
        raise BundleError(f"{bundle.onnx_path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from None


class StepModel:
    """One model step at a time. Inputs live in `feeds` (write controls there); state is fed back internally."""

    def __init__(self, bundle: Bundle, session: ort.InferenceSession | None = None):
        self.bundle = bundle
        self.session = session or make_session(bundle)
        state_shape = (bundle.layers, 1, bundle.hidden)
        latent = (1, bundle.latent_dim)
        self.feeds: dict[str, np.ndarray] = {
            "frame": np.zeros((1, bundle.dim), dtype=np.float32),
            "h_in": np.zeros(state_shape, dtype=np.float32),
            "c_in": np.zeros(state_shape, dtype=np.float32),
            "eps": np.zeros(latent, dtype=np.float32),
            "temperature": np.ones(1, dtype=np.float32),
            "latent_offset": np.zeros(latent, dtype=np.float32),
            "latent_mix": np.zeros(1, dtype=np.float32),
            "z_user": np.zeros(latent, dtype=np.float32),
        }
        names = {i.name for i in self.session.get_inputs()}
        if names != set(self.feeds):
            raise BundleError(f"{bundle.onnx_path}: graph inputs {sorted(names)} are not the step's inputs")
        self.output_names = [o.name for o in self.session.get_outputs()]

    def reset_state(self) -> None:
        self.feeds["h_in"].fill(0.0)
        self.feeds["c_in"].fill(0.0)

    def step(self) -> dict[str, np.ndarray]:
        """Run one step on the current feeds; the new state becomes the next step's input."""
        outputs = dict(zip(self.output_names, self.session.run(self.output_names, self.feeds), strict=True))
        self.feeds["h_in"] = outputs["h_out"]
        self.feeds["c_in"] = outputs["c_out"]
        return outputs
