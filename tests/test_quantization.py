"""int8 post-training quantisation (fomm.backends.quantization) on a small convolutional graph:
NNCF quantises it, its output stays close to fp32's, the heads stay float, and the cache beside
the graph is reused, and rebuilt when a file in it is corrupted."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nncf")
pytest.importorskip("openvino")
onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from fomm.backends.openvino_engine import import_openvino  # noqa: E402
from fomm.backends.quantization import (KEEP_QUANTISATIONS, MANIFEST, cached_int8_graphs,  # noqa: E402
                                        find_int8_graphs, float_layers, quantize_graph)

#: The int8 output (a sigmoid, in [0, 1]) stays this close to fp32's, as PSNR with peak 1
#: (measured: 51.2-51.7 dB on the four test images).
MIN_INT8_PSNR_DB = 45.0
CHANNELS = (3, 32, 32, 3)


def small_network(path: Path, seed: int = 0) -> Path:
    """An ONNX image network: three 3x3 convolutions (ReLU between, sigmoid after), as the
    generator's decoder ends. Input ``image`` (B, 3, 32, 32), output ``prediction``."""
    rng = np.random.default_rng(seed)
    nodes, initializers, current = [], [], "image"
    for index, (inputs, outputs) in enumerate(zip(CHANNELS[:-1], CHANNELS[1:])):
        weight = (rng.standard_normal((outputs, inputs, 3, 3)) * math.sqrt(2 / (9 * inputs))).astype(np.float32)
        bias = (rng.standard_normal(outputs) * 0.1).astype(np.float32)
        initializers += [numpy_helper.from_array(weight, f"w{index}"), numpy_helper.from_array(bias, f"b{index}")]
        nodes.append(helper.make_node("Conv", [current, f"w{index}", f"b{index}"], [f"conv{index}"],
                                      pads=[1, 1, 1, 1], name=f"conv{index}"))
        last = index == len(CHANNELS) - 2
        current = "prediction" if last else f"relu{index}"
        nodes.append(helper.make_node("Sigmoid" if last else "Relu", [f"conv{index}"], [current]))
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                            ["batch", 3, 32, 32])],
                              [helper.make_tensor_value_info("prediction", TensorProto.FLOAT, None)], initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def images(count: int, seed: int) -> list[np.ndarray]:
    """Smooth random images (1, 3, 32, 32) in [0, 1]: blurred noise, like photos more than noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((count, 3, 8, 8), dtype=np.float32)
    return [np.kron(image, np.ones((4, 4), np.float32))[None] for image in coarse]


def run(path: Path, image: np.ndarray) -> np.ndarray:
    core = import_openvino().Core()
    compiled = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled.create_infer_request().infer([image])[0].copy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(1 / float(np.mean((a - b) ** 2)))


@pytest.fixture()
def graph(tmp_path) -> Path:
    return small_network(tmp_path / "small.onnx")


def calibration() -> list[tuple[np.ndarray]]:
    return [(image,) for image in images(8, seed=1)]


def test_quantised_graph_is_int8_and_close_to_fp32(graph, tmp_path):
    quantized = quantize_graph(graph, calibration(), tmp_path / "int8" / "small.xml")
    model = import_openvino().Core().read_model(str(quantized))
    types = {op.get_type_name() for op in model.get_ops()}
    assert "FakeQuantize" in types  # NNCF's int8 quantise/dequantise pairs
    # The last convolution feeds the sigmoid output: it stays float (no FakeQuantize on its input).
    assert float_layers(import_openvino().Core().read_model(str(graph))) == ["conv2/WithoutBiases"]
    last = next(op for op in model.get_ops() if op.get_friendly_name() == "conv2/WithoutBiases")
    assert last.input(0).get_source_output().get_node().get_type_name() != "FakeQuantize"
    for image in images(4, seed=7):  # not the calibration images
        assert psnr(run(quantized, image), run(graph, image)) >= MIN_INT8_PSNR_DB


def test_cache_is_reused_and_keyed_by_calibration(graph):
    made = []

    def inputs():
        made.append(1)
        return {graph: calibration()}

    first = cached_int8_graphs([graph], "frames-a", inputs)
    again = cached_int8_graphs([graph], "frames-a", inputs)
    assert first == again and len(made) == 1  # the second call quantised nothing
    assert first[0].parent.parent == graph.parent and first[0].is_file()
    manifest = json.loads((first[0].parent / MANIFEST).read_text())
    assert set(manifest["files"]) == {"small.xml", "small.bin"}
    other = cached_int8_graphs([graph], "frames-b", inputs)
    assert other != first and len(made) == 2
    assert find_int8_graphs([graph]) in (first, other)


def test_corrupted_cache_file_is_detected_and_rebuilt(graph):
    made = []

    def inputs():
        made.append(1)
        return {graph: calibration()}

    xml = cached_int8_graphs([graph], "frames", inputs)[0]
    weights = xml.with_suffix(".bin")
    good = weights.read_bytes()
    corrupted = bytearray(good)
    corrupted[len(corrupted) // 2] ^= 0xFF
    weights.write_bytes(bytes(corrupted))
    rebuilt = cached_int8_graphs([graph], "frames", inputs)[0]
    assert len(made) == 2 and rebuilt == xml
    assert weights.read_bytes() == good  # quantisation is deterministic: the same bytes again
    (xml.parent / MANIFEST).unlink()  # a folder without its manifest (a crash half-way) is not trusted
    assert find_int8_graphs([graph]) is None
    cached_int8_graphs([graph], "frames", inputs)
    assert len(made) == 3


def test_only_the_newest_quantisations_are_kept(graph):
    made = [cached_int8_graphs([graph], f"clip-{index}", lambda: {graph: calibration()})[0].parent
            for index in range(KEEP_QUANTISATIONS + 1)]
    kept = sorted(path for path in graph.parent.glob("int8-*"))
    assert sorted(made[1:]) == kept and not made[0].exists()  # the oldest went
    assert find_int8_graphs([graph])[0].parent == made[-1]  # the newest is what auto would take
