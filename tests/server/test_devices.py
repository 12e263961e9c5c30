"""`ember serve --backend vulkan|opencl` (lavapipe and PoCL, Vulkan and OpenCL on the CPU, here)
through the official openai SDK: the same answers as the CPU server, streamed and not; /health
naming the backend and device; a model split with --n-gpu-layers; clear start errors for a
missing device."""
import json
import os
import subprocess
import sys
import urllib.request

import openai
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from ember_server import EMBER, SMOLLM2, SMOLLM2_FILE, EmberServer  # noqa: E402

QUESTION = [{"role": "user", "content": "What's the capital of France? Answer in one word."}]


DEVICE_NAME = {"vulkan": "llvmpipe", "opencl": "pthread"}  # lavapipe's and PoCL's CPU devices


def devices(kind):
    out = subprocess.run([EMBER, "gpu-info", "--json"], capture_output=True, text=True, timeout=60)
    found = json.loads(out.stdout)[kind]["devices"]
    variable = f"EMBER_REQUIRE_{kind.upper()}"
    if not found and os.environ.get(variable) == "1":
        pytest.fail(f"no {kind} device, and {variable}=1")
    return found


def answer(url, stream=False):
    client = openai.OpenAI(base_url=url + "/v1", api_key="none")
    kwargs = dict(model=SMOLLM2, messages=QUESTION, max_tokens=8, temperature=0, seed=1)
    if not stream:
        return client.chat.completions.create(**kwargs).choices[0].message.content
    return "".join(c.choices[0].delta.content or "" for c in
                   client.chat.completions.create(**kwargs, stream=True) if c.choices)


@pytest.fixture(scope="module")
def cpu_answer(tmp_path_factory):
    with EmberServer(tmp_path_factory.mktemp("cpu"), "--backend", "cpu", models=(SMOLLM2_FILE,)) as cpu:
        return answer(cpu.url)


@pytest.mark.parametrize("kind,placement", [("vulkan", []), ("vulkan", ["--n-gpu-layers", "15"]),
                                            ("opencl", [])])
def test_device_server_answers_as_the_cpu_does(tmp_path, cpu_answer, kind, placement):
    if not devices(kind):
        pytest.skip(f"no {kind} device")
    expected = cpu_answer
    with EmberServer(tmp_path / kind, "--backend", kind, *placement, models=(SMOLLM2_FILE,)) as vk:
        health = json.load(urllib.request.urlopen(vk.url + "/health"))
        assert health["backend"] == kind and DEVICE_NAME[kind] in health["device"], health
        assert "Paris" in expected
        assert answer(vk.url) == expected
        assert answer(vk.url, stream=True) == expected


@pytest.mark.parametrize("kind", ["vulkan", "opencl"])
def test_a_missing_device_stops_the_start_with_the_way_out(tmp_path, kind):
    if not devices(kind):
        pytest.skip(f"no {kind} device")
    out = subprocess.run([EMBER, "serve", "--backend", kind, "--device", "9"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 2 and "--device 9" in out.stderr and "gpu-info" in out.stderr
