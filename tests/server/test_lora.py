"""LoRA adapters in `ember serve`: --lora pairs an adapter with the --model file; a request's
`lora` list sets the scales as llama-server takes it (adapters not named run at 0); scale 0 is
the base model; bad ids, adapters on a model without any, and an adapter for another model are
clear errors. The adapter is written with the `gguf` package, as llama.cpp's converter lays it out."""
import json
import os
import pathlib
import subprocess
import sys
import urllib.error
import urllib.request

import gguf
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from ember_server import EMBER, EmberServer  # noqa: E402

TESTDATA = pathlib.Path(os.environ.get("EMBER_TESTDATA", pathlib.Path(__file__).parents[3] / "shared" / "testdata"))
BASE = TESTDATA / "synthetic" / "tiny-llama-f16.gguf"
OTHER = TESTDATA / "synthetic-b2" / "tiny-llama3-f16.gguf"  # llama too, other widths


def write_adapter(path, arch="llama", n_ff=768, rank=4):
    rng = np.random.default_rng(7)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", 8.0)
    # attn_q [256 → 256] of every layer, ffn_up [256 → n_ff] of layer 0; A: rank × n_in, B: n_out × rank.
    for name, n_in, n_out in [(f"blk.{i}.attn_q.weight", 256, 256) for i in range(4)] + \
                             [("blk.0.ffn_up.weight", 256, n_ff), ("output.weight", 256, 1024)]:
        w.add_tensor(name + ".lora_a", rng.normal(0, 0.3, (rank, n_in)).astype(np.float32))
        w.add_tensor(name + ".lora_b", rng.normal(0, 0.3, (n_out, rank)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def complete(server, **extra):
    body = dict({"model": "tiny-llama-f16", "prompt": "hello world", "max_tokens": 4, "temperature": 0,
                 "logprobs": 1}, **extra)
    req = urllib.request.Request(server.url + "/v1/completions", json.dumps(body).encode())
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    path = tmp_path_factory.mktemp("lora") / "adapter.gguf"
    write_adapter(path)
    return path


def test_lora_scales_per_request(tmp_path, adapter):
    with EmberServer(tmp_path / "plain", "--model", str(BASE), models=()) as s:
        _, plain = complete(s)
    with EmberServer(tmp_path / "lora", "--model", str(BASE), "--lora", f"{adapter}:1.5", models=()) as s:
        status, with_default = complete(s)
        assert status == 200
        _, off = complete(s, lora=[{"id": 0, "scale": 0}])
        _, unnamed = complete(s, lora=[])  # adapters not named run at 0
        _, explicit = complete(s, lora=[{"id": 0, "scale": 1.5}])
        status, bad = complete(s, lora=[{"id": 3, "scale": 1}])
        assert status == 400 and "lora id 3" in bad["error"]["message"], bad
        status, bad = complete(s, lora={"id": 0})
        assert status == 400 and bad["error"]["param"] == "lora"
    lp = lambda r: r["choices"][0]["logprobs"]["token_logprobs"]  # noqa: E731
    assert lp(off) == lp(plain) and lp(unnamed) == lp(plain)  # scale 0: the base model
    assert lp(explicit) == lp(with_default)
    assert lp(with_default) != lp(plain)


def test_lora_on_a_model_without_adapters_is_400(tmp_path):
    with EmberServer(tmp_path, "--model", str(BASE), models=()) as s:
        status, body = complete(s, lora=[{"id": 0, "scale": 1}])
        assert status == 400 and "no LoRA adapters" in body["error"]["message"]


def test_adapter_for_another_model_stops_the_start(tmp_path, adapter):
    out = subprocess.run([EMBER, "serve", "--bind", "127.0.0.1:0", "--model", str(OTHER), "--lora", str(adapter)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "do not fit" in out.stderr, out.stderr
    out = subprocess.run([EMBER, "serve", "--bind", "127.0.0.1:0", "--lora", str(adapter)],
                         capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert out.returncode == 2 and "--model" in out.stderr, out.stderr
    env = dict(os.environ, EMBER_BASE_GGUF=str(BASE), SHIMMY_LORA_GGUF=str(adapter) + ":x")
    out = subprocess.run([EMBER, "serve", "--bind", "127.0.0.1:0"], capture_output=True, text=True, timeout=30,
                         env=env, cwd=tmp_path)
    assert out.returncode == 2 and "scale" in out.stderr, out.stderr
