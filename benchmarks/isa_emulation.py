"""Does capping the instruction set emulate a CPU without AMX (or without AVX-512)? Measure it.

The CPUs people have mostly lack AMX: AVX-512 with BF16 and VNNI (AMD Zen 4) or AVX2 alone (most
Intel laptops and desktops). On a machine with AMX, each runtime's kernels can be held below it:

* torch: ``ONEDNN_MAX_CPU_ISA`` caps oneDNN (convolutions, bf16 matmuls), ``ATEN_CPU_CAPABILITY``
  ATen's own vector kernels, ``MKL_ENABLE_INSTRUCTIONS`` MKL's fp32 matmuls;
* OpenVINO: its CPU plugin's oneDNN reads ``ONEDNN_MAX_CPU_ISA`` too; ``OV_CPU_MAX_ISA`` caps the
  plugin's own kernels (debug builds only up to OpenVINO 2026.4; set anyway, it is harmless);
* onnxruntime: none (MLAS picks its kernels from CPUID, with no switch), so its rows stay native.

For each setting this runs, in a fresh process (the knobs are read once, at load), a matrix
product and a vox-256-sized 3x3 convolution in torch fp32 and bf16, the same convolution in
OpenVINO at fp32, bf16 and int8 (a quantize-dequantize graph, which OpenVINO runs as an int8
convolution) and in onnxruntime fp32, and prints GFLOP/s: a cap that works shows as the bf16 rate
collapsing once AMX is masked (and int8 once VNNI is). ``fomm.backends.hardware`` reads the same
cap, so the flags it reports are printed too.

    python benchmarks/isa_emulation.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

#: name -> environment that emulates it. ``native`` sets nothing.
EMULATIONS: dict[str, dict[str, str]] = {
    "native": {},
    "avx512-bf16-vnni, no AMX (Zen 4)": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16", "OV_CPU_MAX_ISA": "AVX512_CORE_BF16"},
    "avx2 + avx-vnni (Alder Lake)": {"ONEDNN_MAX_CPU_ISA": "AVX2_VNNI", "OV_CPU_MAX_ISA": "AVX2_VNNI",
                                     "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "avx2 only": {"ONEDNN_MAX_CPU_ISA": "AVX2", "OV_CPU_MAX_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
                  "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}

#: The convolution measured: a vox-256 hourglass layer's shape, batch 4, channels-last.
BATCH, CHANNELS_IN, CHANNELS_OUT, SIZE = 4, 128, 128, 64


def _best_seconds(run: Callable[[], object], repeats: int) -> float:
    run()
    run()  # warm-up: kernels built on first use
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _conv_gflop() -> float:
    return 2 * BATCH * CHANNELS_OUT * CHANNELS_IN * 9 * SIZE * SIZE / 1e9


def _torch_rates(repeats: int) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    rates = {}
    size = 1024
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        rates[f"torch matmul {name}"] = 2 * size ** 3 / _best_seconds(lambda: a @ b, repeats) / 1e9
    image = torch.rand(BATCH, CHANNELS_IN, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
    weight = (torch.randn(CHANNELS_OUT, CHANNELS_IN, 3, 3) * 0.03).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            x, w = image.to(dtype), weight.to(dtype)
            rates[f"torch conv {name}"] = _conv_gflop() / _best_seconds(lambda: F.conv2d(x, w, padding=1), repeats)
    return rates


def _conv_onnx(folder: Path, quantized: bool) -> Path:
    """A one-convolution ONNX graph; ``quantized``: input and weights through QuantizeLinear /
    DequantizeLinear (uint8 activations, int8 per-channel weights), the form NNCF produces."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((CHANNELS_OUT, CHANNELS_IN, 3, 3)) * 0.03).astype(np.float32)
    nodes, initializers = [], []
    if quantized:
        scales = np.abs(weight).reshape(CHANNELS_OUT, -1).max(1) / 127
        int_weight = np.round(weight / scales[:, None, None, None]).astype(np.int8)
        initializers += [numpy_helper.from_array(int_weight, "w_int8"),
                         numpy_helper.from_array(scales.astype(np.float32), "w_scale"),
                         numpy_helper.from_array(np.zeros(CHANNELS_OUT, np.int8), "w_zero"),
                         numpy_helper.from_array(np.array(1 / 255, np.float32), "x_scale"),
                         numpy_helper.from_array(np.array(0, np.uint8), "x_zero")]
        nodes += [helper.make_node("DequantizeLinear", ["w_int8", "w_scale", "w_zero"], ["w"], axis=0),
                  helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["x_q"]),
                  helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], ["x_dq"])]
        conv_input = "x_dq"
    else:
        initializers.append(numpy_helper.from_array(weight, "w"))
        conv_input = "x"
    nodes.append(helper.make_node("Conv", [conv_input, "w"], ["y"], pads=[1, 1, 1, 1]))
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                           [BATCH, CHANNELS_IN, SIZE, SIZE])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializers)
    path = folder / ("conv-qdq.onnx" if quantized else "conv.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def _runtime_rates(threads: int, repeats: int) -> dict[str, float]:
    import numpy as np

    rates = {}
    image = np.random.default_rng(1).random((BATCH, CHANNELS_IN, SIZE, SIZE), dtype=np.float32)
    with tempfile.TemporaryDirectory() as temporary:
        plain, quantized = _conv_onnx(Path(temporary), False), _conv_onnx(Path(temporary), True)
        try:
            from fomm.backends.openvino_engine import import_openvino

            core = import_openvino().Core()
            for name, path, hint in (("fp32", plain, "f32"), ("bf16", plain, "bf16"), ("int8", quantized, "f32")):
                request = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                                "INFERENCE_NUM_THREADS": threads}
                                             ).create_infer_request()
                rates[f"openvino conv {name}"] = _conv_gflop() / _best_seconds(lambda: request.infer([image]), repeats)
        except ImportError:
            pass
        try:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            session = onnxruntime.InferenceSession(str(plain), options, providers=["CPUExecutionProvider"])
            rates["onnxruntime conv fp32"] = _conv_gflop() / _best_seconds(lambda: session.run(None, {"x": image}),
                                                                           repeats)
        except ImportError:
            pass
    return rates


def measure(threads: int, repeats: int) -> dict[str, object]:
    """This process's rates (GFLOP/s) and the CPU flags fomm sees under its environment."""
    import torch

    from fomm.backends.hardware import cpu_info

    torch.set_num_threads(threads)
    rates = _torch_rates(repeats)
    rates.update(_runtime_rates(threads, repeats))
    info = cpu_info()
    return {"rates": rates, "fomm_flags": info.isa_summary(), "onednn_isa": torch.backends.cpu.get_cpu_capability()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.threads, args.repeats)))
        return
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    flags = next((line.split(":", 1)[1].split() for line in lscpu.splitlines() if line.startswith("Flags")), [])
    wanted = ("amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f", "avx2")
    print("lscpu flags (of interest):", " ".join(flag for flag in wanted if flag in flags))
    print(f"load average before: {os.getloadavg()[0]:.2f}; {args.threads} threads, best of {args.repeats}")
    results = {}
    for name, environment in EMULATIONS.items():
        child = subprocess.run([sys.executable, __file__, "--child", "--threads", str(args.threads), "--repeats",
                                str(args.repeats)], env={**os.environ, **environment}, capture_output=True, text=True,
                               check=True)
        results[name] = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"  measured {name}", file=sys.stderr, flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    rows = list(next(iter(results.values()))["rates"])
    print()
    print("| GFLOP/s | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for row in rows:
        print(f"| {row} | " + " | ".join(f"{result['rates'].get(row, float('nan')):.0f}"
                                         for result in results.values()) + " |")
    print("| torch.backends.cpu capability | " + " | ".join(str(r["onednn_isa"]) for r in results.values()) + " |")
    print("| flags fomm sees | " + " | ".join(str(r["fomm_flags"]) for r in results.values()) + " |")
    print()
    for name, environment in EMULATIONS.items():
        print(f"- {name}: " + (" ".join(f"{key}={value}" for key, value in environment.items()) or "(no variable)"))


if __name__ == "__main__":
    main()
