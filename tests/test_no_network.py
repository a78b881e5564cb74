"""Nothing leaves the machine: an animation with every runtime installed (torch, onnxruntime,
OpenVINO) and the `auto` choice, which loads them all, opens no network connection, not even a
DNS lookup. Both runtimes report usage by default (OpenVINO from Python, onnxruntime from its
native library), so this is watched at the system-call level, with strace."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from .conftest import fresh_cache


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (scripts/setup.sh installs it "
                                                            "in CI)")
def test_animating_with_every_runtime_makes_no_network_connection(tmp_path):
    trace = tmp_path / "connect.trace"
    environment = {key: value for key, value in os.environ.items() if key != "CI"}  # CI=true silences OpenVINO
    environment.update(FOMM_CACHE=str(fresh_cache(tmp_path / "cache")), OMP_NUM_THREADS="1")
    done = subprocess.run(["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(trace), sys.executable, "-m",
                           "fomm.cli", "animate", "--out", str(tmp_path / "out.mp4"), "--precision", "auto",
                           "--backend", "auto"], capture_output=True, text=True, timeout=300, env=environment,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert trace.is_file()  # strace watched the whole run
    network = [line for line in trace.read_text().splitlines() if "AF_INET" in line]
    assert network == [], "\n".join(network[:5])
