"""The onnxruntime step on the committed demo bundle: its feeds, its state, its precisions and its devices."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest

from liveshtr.bundle import BundleError
from liveshtr.errors import LiveshtrError
from liveshtr.live.runtime import DeviceError, StepModel, default_threads, make_session, session_options

STATE = ("h_in", "c_in", "h_out", "c_out")
CUDA_PROVIDER = "CUDAExecutionProvider" in ort.get_available_providers()


def with_meta(bundle, **sections):
    """The bundle with some model.json sections replaced (the files on disk stay the demo's)."""
    return dataclasses.replace(bundle, meta={**bundle.meta, **sections})


def fill_feeds(model: StepModel, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for array in model.feeds.values():
        array[:] = rng.standard_normal(array.shape).astype(np.float32)
    model.feeds["temperature"][:] = 1.0
    model.feeds["latent_mix"][:] = 0.0


def run(model: StepModel, n: int, seed: int = 0) -> list[np.ndarray]:
    """n steps from a zero state on the same feeds: the predicted frames, copied."""
    model.reset_state()
    fill_feeds(model, seed)
    return [model.step()["next_frame"].copy() for _ in range(n)]


def cuda_usable(bundle) -> bool:
    try:
        make_session(bundle, "cuda")
    except DeviceError:
        return False
    return True


def test_feeds_and_outputs_have_the_shapes_model_json_lists(bundle):
    model = StepModel(bundle)
    tensors = bundle.meta["tensors"]
    inputs = [n for n in bundle.meta["inputs"] if n not in STATE]
    assert list(model.control_inputs) == inputs and "frame" in inputs
    assert list(model.feeds) == inputs
    assert set(model.outputs) == {n for n in bundle.meta["outputs"] if n not in STATE}
    for name, array in {**model.feeds, **model.outputs}.items():
        assert list(array.shape) == tensors[name]["shape"], name
        assert array.dtype == np.float32, name
    assert model.feeds["frame"].shape == (1, bundle.dim)
    assert model.feeds["temperature"][0] == 1.0  # sampled as trained until a control says otherwise
    assert np.all(model.feeds["latent_offset"] == 0.0)
    assert model.device == "cpu" and model.precision == "float32"


def test_step_returns_the_same_arrays_overwritten(bundle):
    model = StepModel(bundle)
    fill_feeds(model, 1)
    first = model.step()
    frame = first["next_frame"].copy()
    second = model.step()
    assert second is model.outputs and second["next_frame"] is first["next_frame"]
    assert not np.array_equal(second["next_frame"], frame)  # overwritten by the second step


def test_a_step_is_deterministic_and_the_state_carries_over(bundle):
    a, b = StepModel(bundle), StepModel(bundle)
    frames_a, frames_b = run(a, 4), run(b, 4)
    for x, y in zip(frames_a, frames_b, strict=True):
        np.testing.assert_array_equal(x, y)
        assert np.isfinite(x).all()
    # the same feeds from a moved state predict another frame: the state is carried from one step to the next
    assert not np.array_equal(frames_a[0], frames_a[1])
    assert not np.array_equal(frames_a[1], frames_a[2])
    # reset_state returns to the start, whichever buffer pair the last step left the state in
    for n in (1, 2, 3):
        again = run(a, n)
        np.testing.assert_array_equal(again, frames_a[:n])


def reference(model: StepModel, n: int, seed: int = 0) -> list[np.ndarray]:
    """n steps of the graph itself on `run`'s feeds, the state carried by hand in fresh arrays."""
    fill_feeds(model, seed)
    feeds = {name: array.copy() for name, array in model.feeds.items()}
    h = c = np.zeros(model.bundle.meta["tensors"]["h_in"]["shape"], dtype=np.float32)
    frames = []
    for _ in range(n):
        frame, h, c = model.session.run(["next_frame", "h_out", "c_out"], {**feeds, "h_in": h, "c_in": c})
        frames.append(frame)
    return frames


def test_the_plain_path_carries_the_state_as_the_graph_defines(bundle):
    plain = StepModel(bundle, iobinding=False)
    for x, y in zip(run(plain, 5, seed=2), reference(plain, 5, seed=2), strict=True):
        np.testing.assert_array_equal(x, y)


def test_the_bound_path_carries_the_state_as_the_graph_defines(bundle):
    """The io-binding path (the engine's) ping-pongs the state between two buffer pairs; over several steps it
    must follow the graph's own trajectory, as the plain path does."""
    bound = StepModel(bundle)
    for x, y in zip(run(bound, 5, seed=2), reference(bound, 5, seed=2), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)


def test_set_state_is_what_the_next_step_reads(bundle):
    for iobinding in (True, False):
        model = StepModel(bundle, iobinding=iobinding)
        fill_feeds(model, 3)
        model.step()  # the state now sits in the other buffer pair
        model.set_state(np.nan, np.nan)
        assert np.isnan(model.step()["next_frame"]).all(), iobinding
        first = run(model, 1, seed=3)[0]
        assert np.isfinite(first).all(), iobinding
        model.set_state(0.0, 0.0)
        np.testing.assert_array_equal(model.step()["next_frame"], first)


def test_float32_and_int8_both_run_and_predict_alike(bundle):
    assert bundle.has_int8
    f32, i8 = StepModel(bundle, precision="float32"), StepModel(bundle, precision="int8")
    assert (f32.precision, i8.precision) == ("float32", "int8")
    x, y = run(f32, 3, seed=4), run(i8, 3, seed=4)
    assert all(np.isfinite(v).all() for v in x + y)
    assert not np.array_equal(x[0], y[0])  # really the other graph
    error = np.mean((x[0] - y[0]) ** 2) / np.mean(x[0] ** 2)
    assert error < 0.05, error
    assert StepModel(bundle, precision="auto").precision == "int8"  # the CPU default where the bundle has it


def test_a_bundle_without_the_int8_graph_refuses_int8_and_auto_takes_float32(bundle):
    files = {n: h for n, h in bundle.meta["files"].items() if n != "model.int8.onnx"}
    older = with_meta(bundle, files=files)
    with pytest.raises(BundleError, match="has no int8 graph"):
        StepModel(older, precision="int8")
    assert StepModel(older, precision="auto").precision == "float32"


def test_unknown_device_or_precision_is_a_clear_error(bundle):
    with pytest.raises(DeviceError, match="unknown precision 'int4'; choose one of auto, float32, int8"):
        make_session(bundle, "cpu", precision="int4")
    with pytest.raises(DeviceError, match="unknown device 'gpu'; choose one of auto, cpu, cuda"):
        make_session(bundle, "gpu")
    assert issubclass(DeviceError, LiveshtrError)


def test_cuda_without_a_usable_gpu_is_a_one_line_device_error(bundle):
    if cuda_usable(bundle):
        pytest.skip("this machine has a usable CUDA GPU")
    with pytest.raises(DeviceError, match="--device cuda") as info:
        StepModel(bundle, device="cuda")
    assert "\n" not in str(info.value) and "use --device cpu" in str(info.value)
    # int8 never runs on CUDA: refused whether or not this onnxruntime has the CUDA provider
    with pytest.raises(DeviceError, match="int8 runs on the CPU only" if CUDA_PROVIDER else "no CUDA provider"):
        StepModel(bundle, device="cuda", precision="int8")
    # auto falls back to the CPU, and to int8 there
    model = StepModel(bundle, device="auto", precision="auto")
    assert (model.device, model.precision) == ("cpu", "int8")
    assert model.session.get_providers() == ["CPUExecutionProvider"]


def test_auto_device_with_int8_runs_on_the_cpu(bundle):
    model = StepModel(bundle, device="auto", precision="int8")
    assert (model.device, model.precision) == ("cpu", "int8")


def test_cuda_step_matches_the_cpu_step(bundle):
    if not cuda_usable(bundle):
        pytest.skip("no usable CUDA GPU")
    gpu, cpu = StepModel(bundle, device="cuda"), StepModel(bundle, device="cpu")
    assert (gpu.device, gpu.precision) == ("cuda", "float32")
    for x, y in zip(run(gpu, 4, seed=5), run(cpu, 4, seed=5), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-3)


def test_a_damaged_graph_is_a_one_line_bundle_error(bundle, tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"not an onnx graph at all")
    broken = dataclasses.replace(bundle, path=tmp_path)
    with pytest.raises(BundleError, match="onnxruntime cannot load it") as info:
        StepModel(broken)
    assert str(tmp_path / "model.onnx") in str(info.value) and "\n" not in str(info.value)


def test_a_graph_whose_inputs_are_not_the_steps_is_refused(bundle):
    session, _, _ = make_session(bundle)
    extra = with_meta(bundle, inputs=[*bundle.meta["inputs"], "pitch_bend"])
    with pytest.raises(BundleError, match="are not the step's inputs"):
        StepModel(extra, session=session)
    missing = with_meta(bundle, inputs=[n for n in bundle.meta["inputs"] if n != "beat"])
    with pytest.raises(BundleError, match="are not the step's inputs"):
        StepModel(missing, session=session)


def test_default_threads_split_only_large_steps(bundle):
    def sized(hidden):
        return with_meta(bundle, model={**bundle.meta["model"], "hidden": hidden})

    assert bundle.hidden == 384
    assert [default_threads(sized(h)) for h in (384, 511, 512, 1024)] == [1, 1, 2, 2]
    assert [default_threads(sized(h), "int8") for h in (512, 1023, 1024, 2048)] == [1, 1, 2, 2]
    assert StepModel(bundle).threads == 1
    assert StepModel(bundle, threads=3).threads == 3


def test_session_options_keep_the_pool_quiet():
    options = session_options(3)
    assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # worker threads sleep between steps instead of spinning against the audio threads
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
