"""`ember gpu-info`: the CPU, every Vulkan device (lavapipe here) and OpenCL device (PoCL here)
with what ember needs to know, which backend serve would use, and a clear answer on a machine
without Vulkan or OpenCL drivers."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from ember_server import EMBER  # noqa: E402


def gpu_info(*args, env=None):
    out = subprocess.run([EMBER, "gpu-info", *args], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, **(env or {})))
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_lists_lavapipe_and_pocl():
    info = json.loads(gpu_info("--json"))
    assert info["cpu"]["kernel_level"] and info["cpu"]["features"]
    lavapipe = [d for d in info["vulkan"]["devices"] if "llvmpipe" in d["name"]]
    assert lavapipe, info["vulkan"]
    d = lavapipe[0]
    assert d["type"] == "cpu" and d["subgroup_size"] in (4, 8, 16) and d["max_shared_memory"] >= 16384
    assert d["max_storage_buffer_range"] >= (1 << 27) and d["heaps"] and d["api_version"].startswith("1.")
    pocl = [d for d in info["opencl"]["devices"] if "Portable Computing Language" in d["platform"]]
    assert pocl, info["opencl"]
    assert pocl[0]["c_version"].startswith("OpenCL C 1.2") and pocl[0]["compute_units"] >= 1
    assert info["serve"]["backend"] == "cpu" and info["serve"]["reason"]
    text = gpu_info()
    assert "llvmpipe" in text and "Portable Computing Language" in text and "serve --backend auto" in text
    assert "not a GPU: used with --backend opencl --device N" in text  # why PoCL is not chosen


def test_no_drivers_is_said_plainly():
    env = {"VK_ICD_FILENAMES": "/nonexistent.json", "VK_DRIVER_FILES": "/nonexistent.json",
           "OCL_ICD_VENDORS": "/nonexistent", "OPENCL_VENDOR_PATH": "/nonexistent"}
    info = json.loads(gpu_info("--json", env=env))
    assert info["vulkan"]["devices"] == [] and info["vulkan"]["error"]
    assert info["opencl"]["devices"] == [] and info["opencl"]["error"]
    assert info["serve"]["backend"] == "cpu"


def test_device_backends_take_the_cpu_type_devices_when_asked():
    info = json.loads(gpu_info("--json", "--backend", "vulkan"))
    assert info["serve"]["backend"] == "vulkan" and "llvmpipe" in info["serve"]["device"]
    assert "no GPU" in info["serve"]["reason"]
    info = json.loads(gpu_info("--json", "--backend", "vulkan", "--device", "7"))
    assert "--device 7" in info["serve"]["error"]
    info = json.loads(gpu_info("--json", "--backend", "opencl"))
    assert info["serve"]["backend"] == "opencl" and "Portable Computing Language" in info["serve"]["device"]
    assert "no GPU" in info["serve"]["reason"]


def test_ember_device_names_the_device_for_model_commands():
    model = os.path.join(os.environ.get("EMBER_TESTDATA", "../shared/testdata"), "synthetic",
                         "tiny-llama-q8_0.gguf")
    out = subprocess.run([EMBER, "eval", "--model", model, "--tokens", "1", "--logits-out", "/dev/null",
                          "--backend", "vulkan"], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, EMBER_DEVICE="9"))
    assert out.returncode == 2 and "--device 9" in out.stderr, out.stderr
