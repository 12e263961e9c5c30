"""`ember serve --draft-model FILE` (model/draft_model.h): a small model with the target's
vocabulary guesses the next tokens, the target verifies them in its own forward pass, and what
the client gets never changes."""
import json
import os
import pathlib
import re
import subprocess
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from ember_server import EMBER, SMOLLM2, SMOLLM2_FILE, EmberServer  # noqa: E402

TESTDATA = pathlib.Path(os.environ.get("EMBER_TESTDATA", pathlib.Path(__file__).parents[3] / "shared" / "testdata"))
TARGET = TESTDATA / "synthetic" / "tiny-llama-f16.gguf"
DRAFT = TESTDATA / "synthetic" / "tiny-llama-q4_0.gguf"


def post(server, path, body):
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
                          "-d", json.dumps(body), server.url + path], capture_output=True, text=True,
                         timeout=120).stdout
    text, status = out.rsplit("\n", 1)
    return int(status), text


def metric(server, name):
    out = subprocess.run(["curl", "-s", server.url + "/metrics"], capture_output=True, text=True).stdout
    return float(next(line.split()[1] for line in out.splitlines() if line.startswith(name + " ")))


def test_draft_model_changes_nothing_but_speed(tmp_path):
    """Four requests at once, greedy and seeded sampling, guessing off / by number / by default:
    the same text each time, streamed or not; /metrics counts the draft's guesses and the ones
    taken. A model whose vocabulary the draft does not share (SmolLM2) is served with prompt
    lookup instead, and the log says why."""
    with EmberServer(tmp_path, "--parallel", "4", "--ctx", "512", "--draft-model", str(DRAFT),
                     models=(TARGET, SMOLLM2_FILE)) as s:
        target = "tiny-llama-f16"
        assert post(s, "/v1/completions", {"model": target, "prompt": "x", "max_tokens": 1})[0] == 200

        def ask(speculative, temperature, seed, stream=False):
            body = {"model": target, "prompt": "the history of the", "max_tokens": 48,
                    "temperature": temperature, "seed": seed, "stream": stream}
            if speculative is not None:
                body["speculative"] = speculative
            status, out = post(s, "/v1/completions", body)
            assert status == 200, out
            if not stream:
                return json.loads(out)["choices"][0]["text"]
            chunks = [json.loads(line[6:]) for line in out.splitlines()
                      if line.startswith("data: {")]
            return "".join(c["choices"][0]["text"] for c in chunks if c["choices"])

        drafted = metric(s, "ember_speculative_draft_tokens_total")
        taken = metric(s, "ember_speculative_accepted_tokens_total")
        for temperature, seed in ((0, 0), (0.9, 3)):
            settings = [0, 6, True, None]
            results = [None] * len(settings)

            def run(i):
                results[i] = ask(settings[i], temperature, seed)
            threads = [threading.Thread(target=run, args=(i,)) for i in range(len(settings))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert all(r == results[0] for r in results), (temperature, results)
            assert results[0]
            assert ask(8, temperature, seed, stream=True) == results[0]
        assert metric(s, "ember_speculative_draft_tokens_total") > drafted
        assert metric(s, "ember_speculative_accepted_tokens_total") > taken
        assert "loaded tiny-llama-f16" in s.log() and "with the draft model" in s.log()

        status, out = post(s, "/v1/chat/completions", {
            "model": SMOLLM2, "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": "Say hi."}]})
        assert status == 200, out
        assert "no draft model, prompt lookup guesses instead" in s.log(), s.log()
        assert "cannot guess for this model" in s.log(), s.log()


def test_each_slot_keeps_its_own_draft_sequence(tmp_path):
    """The model as its own draft: every guess is right unless the slots' draft sequences mix
    (a wrong guess never shows in the text, so this counts them). Four different prompts at
    once, then a client that goes away mid-stream, then new prompts in the reused slots."""
    with EmberServer(tmp_path, "--parallel", "4", "--ctx", "512", "--draft-model", str(TARGET),
                     models=(TARGET,)) as s:
        target = "tiny-llama-f16"

        def ask(prompt, results=None, i=0):
            status, out = post(s, "/v1/completions", {"model": target, "prompt": prompt,
                                                      "max_tokens": 40, "temperature": 0})
            assert status == 200, out
            if results is not None:
                results[i] = json.loads(out)["choices"][0]["text"]

        prompts = ["the history of the", "once upon a time there", "in a small village by",
                   "a list of rivers:"]
        results = [None] * 4
        threads = [threading.Thread(target=ask, args=(p, results, i)) for i, p in enumerate(prompts)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # A streamed request whose client leaves after a few events.
        body = json.dumps({"model": target, "prompt": "the river", "max_tokens": 200,
                           "temperature": 0, "stream": True}).encode()
        import urllib.request
        with urllib.request.urlopen(urllib.request.Request(
                s.url + "/v1/completions", body, {"Content-Type": "application/json"})) as r:
            for _ in range(3):
                r.readline()
        for p in ("numbers: one two", "the history of a", "dear sir, I"):
            ask(p)
        drafted = metric(s, "ember_speculative_draft_tokens_total")
        taken = metric(s, "ember_speculative_accepted_tokens_total")
        assert drafted > 100 and taken >= 0.97 * drafted, (taken, drafted)


def test_a_draft_for_another_vocabulary_stops_the_start(tmp_path):
    """With --model naming the model served, a draft that cannot guess for it is refused at start
    with the reason; a draft file that is not there too."""
    bad = subprocess.run([EMBER, "serve", "--bind", "127.0.0.1:0", "--model", str(SMOLLM2_FILE),
                          "--draft-model", str(DRAFT)], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert bad.returncode == 2, bad.stderr
    assert "--draft-model: the draft model cannot guess for this model" in bad.stderr, bad.stderr
    missing = subprocess.run([EMBER, "serve", "--bind", "127.0.0.1:0", "--draft-model",
                              str(tmp_path / "nothing.gguf")], capture_output=True, text=True,
                             timeout=60, cwd=tmp_path)
    assert missing.returncode != 0 and "nothing.gguf" in missing.stderr, missing.stderr


@pytest.mark.parametrize("backend", ["cpu", "vulkan", "opencl"])
def test_generate_with_a_draft_on_each_backend(backend):
    """`ember generate --draft-model`: the draft gets its own backend (each holds one KV cache;
    sharing the target's would mix their caches and change the output), on the target's threads
    or device. Greedy and sampled text as without it, with guesses taken and rejected."""
    if backend != "cpu":
        found = json.loads(subprocess.run([EMBER, "gpu-info", "--json"], capture_output=True,
                                          text=True, timeout=60).stdout)[backend]["devices"]
        if not found:
            if os.environ.get(f"EMBER_REQUIRE_{backend.upper()}") == "1":
                pytest.fail(f"no {backend} device, and EMBER_REQUIRE_{backend.upper()}=1")
            pytest.skip(f"no {backend} device")
    args = [EMBER, "generate", "--model", str(TARGET), "--prompt", "the history of the",
            "--max-tokens", "40", "--backend", backend]
    for sampling in (["--temperature", "0"], ["--temperature", "0.9", "--seed", "2"]):
        # The tiny random model's text is not always UTF-8: compared as bytes.
        plain = subprocess.run([*args, *sampling], capture_output=True, timeout=300)
        assert plain.returncode == 0, plain.stderr
        out = subprocess.run([*args, *sampling, "--draft-model", str(DRAFT), "--stats"],
                             capture_output=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert out.stdout == plain.stdout and plain.stdout.strip()
        stats = out.stderr.decode(errors="replace")
        assert re.search(r"[1-9]\d* tokens guessed, [1-9]\d* taken", stats), stats
