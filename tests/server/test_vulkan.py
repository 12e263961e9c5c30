"""`ember serve --backend vulkan` (lavapipe, Mesa's Vulkan on the CPU, here) through the official
openai SDK and curl: the same answers as the CPU server, streamed and not; /health naming the
backend and device; a model split with --n-gpu-layers; clear start errors for a missing device."""
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


def vulkan_devices():
    out = subprocess.run([EMBER, "gpu-info", "--json"], capture_output=True, text=True, timeout=60)
    devices = json.loads(out.stdout)["vulkan"]["devices"]
    if not devices and os.environ.get("EMBER_REQUIRE_VULKAN") == "1":
        pytest.fail("no Vulkan device, and EMBER_REQUIRE_VULKAN=1")
    return devices


def answer(url, stream=False):
    client = openai.OpenAI(base_url=url + "/v1", api_key="none")
    kwargs = dict(model=SMOLLM2, messages=QUESTION, max_tokens=8, temperature=0, seed=1)
    if not stream:
        return client.chat.completions.create(**kwargs).choices[0].message.content
    return "".join(c.choices[0].delta.content or "" for c in
                   client.chat.completions.create(**kwargs, stream=True) if c.choices)


@pytest.mark.parametrize("placement", [[], ["--n-gpu-layers", "15"]])
def test_vulkan_server_answers_as_the_cpu_does(tmp_path, placement):
    if not vulkan_devices():
        pytest.skip("no Vulkan device")
    with EmberServer(tmp_path / "cpu", "--backend", "cpu", models=(SMOLLM2_FILE,)) as cpu:
        expected = answer(cpu.url)
    with EmberServer(tmp_path / "vk", "--backend", "vulkan", *placement, models=(SMOLLM2_FILE,)) as vk:
        health = json.load(urllib.request.urlopen(vk.url + "/health"))
        assert health["backend"] == "vulkan" and "llvmpipe" in health["device"], health
        assert "Paris" in expected
        assert answer(vk.url) == expected
        assert answer(vk.url, stream=True) == expected


def test_a_missing_device_stops_the_start_with_the_way_out(tmp_path):
    if not vulkan_devices():
        pytest.skip("no Vulkan device")
    out = subprocess.run([EMBER, "serve", "--backend", "vulkan", "--device", "9"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 2 and "--device 9" in out.stderr and "gpu-info" in out.stderr
