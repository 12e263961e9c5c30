"""What real clients hit (issue: fresh-machine set-up and clients): a client that goes away stops
its work (non-streamed, queued, and the openai SDK's timed-out retries), oversized bodies reach
urllib / requests / http.client as a 413 with its JSON, parts a text model cannot honour are
refused, Ollama-style and file-stem model names, requests without a model, assistant prefill, and
the OpenAI shapes of logprobs, errors and range messages."""
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import openai
import pytest
import requests

sys.path.insert(0, os.path.dirname(__file__))
from ember_server import EMBER, GEMMA3, GEMMA3_FILE, SMOLLM2, SMOLLM2_FILE, EmberServer, post, ollama_model, wait_until  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with EmberServer(tmp_path_factory.mktemp("clients"), "--parallel", "2", "--ctx", "2048") as s:
        yield s


def metrics(server):
    text = urllib.request.urlopen(server.url + "/metrics", timeout=10).read().decode()
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line and line[0] != "#"}


def idle(server):
    m = metrics(server)
    return m["ember_active_requests"] == 0 and m["ember_queue_depth"] == 0


def send_raw(server, path, body):
    """Opens a connection and sends one POST without reading the answer."""
    data = json.dumps(body).encode()
    s = socket.create_connection((server.host, server.port), timeout=30)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
              % (path.encode(), len(data)) + data)
    return s


# Long enough that no machine finishes it within the seconds a test waits (ignore_eos: no early end).
LONG = {"model": SMOLLM2, "prompt": "Once upon a time", "max_tokens": 1500, "temperature": 0.8, "seed": 1,
        "ignore_eos": True}


# ---- a client that goes away stops its work ----

def test_closed_non_streamed_request_stops_generating(server):
    assert wait_until(lambda: idle(server), timeout=30)
    before = metrics(server)
    s = send_raw(server, "/v1/completions", LONG)
    time.sleep(1.0)
    s.close()
    # Cancelled at the next step: the slot frees at once, far short of 500 tokens.
    assert wait_until(lambda: idle(server), timeout=3)
    after = metrics(server)
    assert after["ember_generations_cancelled_total"] == before["ember_generations_cancelled_total"] + 1
    assert after["ember_completion_tokens_total"] - before["ember_completion_tokens_total"] < 1000


def test_queued_request_whose_client_left_never_starts(tmp_path):
    with EmberServer(tmp_path, "--parallel", "1", models=(SMOLLM2_FILE,)) as s:
        running = send_raw(s, "/v1/completions", LONG)
        assert wait_until(lambda: metrics(s)["ember_active_requests"] == 1, timeout=30)
        queued = send_raw(s, "/v1/completions", dict(LONG, seed=2))
        assert wait_until(lambda: metrics(s)["ember_queue_depth"] == 1, timeout=5)
        queued.close()
        time.sleep(0.5)
        running.close()
        assert wait_until(lambda: idle(s), timeout=5)
        m = metrics(s)
        assert m["ember_generations_total"] == 1, m  # the queued one never started
        assert m["ember_generations_cancelled_total"] == 2, m


def test_openai_sdk_timeouts_do_not_leave_generations_running(server):
    assert wait_until(lambda: idle(server), timeout=30)
    before = metrics(server)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=1.0, max_retries=2)
    start = time.time()
    with pytest.raises(openai.APITimeoutError):
        client.completions.create(model=SMOLLM2, prompt="Once upon a time", max_tokens=1500, temperature=0.8,
                                  extra_body={"ignore_eos": True})
    # Three tries, each cancelled when its connection closed: nothing keeps generating.
    assert wait_until(lambda: idle(server), timeout=3), time.time() - start
    after = metrics(server)
    assert after["ember_generations_cancelled_total"] - before["ember_generations_cancelled_total"] == 3
    assert after["ember_completion_tokens_total"] - before["ember_completion_tokens_total"] < 3 * 1000


# ---- oversized bodies ----

@pytest.mark.parametrize("mib", [17, 64])
def test_oversized_body_is_a_413_for_every_client(server, mib):
    body = b'{"model": "x", "prompt": "' + b"a" * (mib << 20) + b'"}'
    # urllib
    req = urllib.request.Request(server.url + "/v1/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=60)
    assert err.value.code == 413 and json.loads(err.value.read())["error"]["code"] == "request_too_large"
    # requests
    r = requests.post(server.url + "/v1/completions", data=body, timeout=60,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than" in r.json()["error"]["message"]
    # http.client, which sends the whole body before it reads
    c = http.client.HTTPConnection(server.host, server.port, timeout=60)
    c.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 413 and json.loads(r.read())["error"]["type"] == "invalid_request_error"
    c.close()
    assert urllib.request.urlopen(server.url + "/health", timeout=10).status == 200


# ---- nothing a request asks for is silently dropped ----

@pytest.mark.parametrize("part", [
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
])
def test_image_and_audio_parts_are_refused(server, part):
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, part]}]
    status, body = post(server, "/v1/chat/completions", {"model": SMOLLM2, "messages": messages, "max_tokens": 2})
    assert status == 400, body
    message = body["error"]["message"]
    assert part["type"] in message and SMOLLM2 in message and body["error"]["param"] == "messages"


@pytest.mark.parametrize("field,value", [
    ("response_format", {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "integer", "minimum": 0}}}),
    ("response_format", {"type": "yaml"}),
    ("tool_choice", "required"),
    ("tool_choice", {"type": "function", "function": {"name": "get_weather"}}),
    ("grammar", "root ::= yes"),  # GBNF whose rule 'yes' is not defined
])
def test_constraints_that_cannot_be_honoured_are_400(server, field, value):
    body = {"model": SMOLLM2, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, field: value}
    status, out = post(server, "/v1/chat/completions", body)
    assert status == 400 and out["error"]["param"] == field, out


@pytest.mark.parametrize("path,field,value", [
    ("/v1/completions", "logit_bias", {"50": 100}),
    ("/v1/completions", "echo", True),
    ("/v1/completions", "suffix", " the end"),
    ("/v1/chat/completions", "functions", [{"name": "f", "parameters": {"type": "object"}}]),
    ("/v1/chat/completions", "function_call", {"name": "f"}),
    ("/api/generate", "images", ["iVBORw0KGgo="]),
    ("/api/generate", "options", {"mirostat": 2}),
    ("/api/generate", "options", {"typical_p": 0.5}),
])
def test_other_fields_that_cannot_be_honoured_are_400(server, path, field, value):
    body = {"model": SMOLLM2, "max_tokens": 2, field: value}
    body.update({"messages": [{"role": "user", "content": "Hi"}]} if "chat" in path else {"prompt": "Hi"})
    status, out = post(server, path, body)
    named = field if field != "options" else list(value)[0]
    if path.startswith("/api/"):  # Ollama's shape: {"error": "message"}
        assert status == 400 and named in out["error"], out
        return
    assert status == 400 and out["error"]["param"] in (field, "options"), out
    assert named in out["error"]["message"], out


def test_ollama_options_are_honoured(server):
    base = {"model": SMOLLM2, "prompt": "Once upon a time", "stream": False, "raw": True,
            "options": {"temperature": 0, "num_predict": 3}}
    status, out = post(server, "/api/generate", base)
    assert status == 200 and out["usage"]["completion_tokens"] == 3, out
    status, again = post(server, "/api/generate", dict(base, options={"temperature": 0, "num_predict": 3,
                                                                       "num_ctx": 4096, "num_thread": 2}))
    assert status == 200 and again["choices"][0]["text"] == out["choices"][0]["text"]


def test_a_request_sent_with_a_half_close_is_answered(server):
    # `nc -N` and some proxies send the request, then shut their side: a quick answer still goes out.
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b'"healthy"' in data


def test_plain_text_format_and_auto_tools_are_fine(server):
    body = {"model": SMOLLM2, "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            "max_tokens": 2, "response_format": {"type": "text"}, "tool_choice": "auto"}
    assert post(server, "/v1/chat/completions", body)[0] == 200


# ---- model names ----

def test_ollama_names_and_file_stems_resolve(tmp_path):
    ollama_model(tmp_path / "ollama", "smol", "latest", SMOLLM2_FILE, link=True)
    # The store holds SmolLM2; ./models holds Gemma 3 only (one file is listed once).
    with EmberServer(tmp_path, env={"OLLAMA_MODELS": str(tmp_path / "ollama")}, models=(GEMMA3_FILE,)) as s:
        ids = lambda: [m["id"] for m in json.loads(urllib.request.urlopen(s.url + "/v1/models").read())["data"]]  # noqa: E731
        assert wait_until(lambda: "smol:latest" in ids(), timeout=10), ids()
        for name, expect in [("smol", "smol:latest"), ("smol:latest", "smol:latest"), ("SMOL", "smol:latest"),
                             (GEMMA3 + ":latest", GEMMA3), ("gemma-3-270m-q4_k_m", GEMMA3),
                             ("gemma-3-270m-q4_k_m.gguf", GEMMA3)]:
            status, body = post(s, "/v1/chat/completions", {"model": name, "max_tokens": 1,
                                                            "messages": [{"role": "user", "content": "Hi"}]})
            assert status == 200 and body["model"] == expect, (name, body)
            one = json.loads(urllib.request.urlopen(s.url + "/v1/models/" + name).read())
            assert one["id"] == expect, (name, one)


def test_request_without_model(tmp_path):
    chat = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    with EmberServer(tmp_path / "one", models=(SMOLLM2_FILE,)) as s:  # the only model
        status, body = post(s, "/v1/chat/completions", chat)
        assert status == 200 and body["model"] == SMOLLM2
    with EmberServer(tmp_path / "two") as s:  # several, none named: 400 listing them
        status, body = post(s, "/v1/chat/completions", chat)
        assert status == 400 and SMOLLM2 in body["error"]["message"] and GEMMA3 in body["error"]["message"]
        assert body["error"]["param"] == "model"
    with EmberServer(tmp_path / "three", "--model", str(SMOLLM2_FILE)) as s:  # --model's among several
        status, body = post(s, "/v1/completions", {"prompt": "Hi", "max_tokens": 1})
        assert status == 200 and body["model"] == SMOLLM2


# ---- assistant prefill ----

def render(tmp_path, messages, generation_prompt):
    (tmp_path / "m.json").write_text(json.dumps(messages))
    args = [EMBER, "template", "--model", str(SMOLLM2_FILE), "--messages", str(tmp_path / "m.json")]
    return subprocess.run(args + (["--add-generation-prompt"] if generation_prompt else []),
                          capture_output=True, text=True, check=True).stdout


def count_tokens(tmp_path, text):
    (tmp_path / "p.txt").write_text(text)
    return len(subprocess.run([EMBER, "tokenize", "--model", str(SMOLLM2_FILE), "--file", str(tmp_path / "p.txt"),
                               "--special"], capture_output=True, text=True, check=True).stdout.split())


def test_assistant_prefill_continues_the_message(server, tmp_path):
    prefix = "The capital of France is"
    messages = [{"role": "user", "content": "Tell me about France."}, {"role": "assistant", "content": prefix}]
    rendered = render(tmp_path, messages, False)
    expected = rendered[:rendered.rindex(prefix) + len(prefix)]  # the message left open
    assert rendered != expected
    status, body = post(server, "/v1/chat/completions", {"model": SMOLLM2, "messages": messages, "max_tokens": 8,
                                                         "temperature": 0})
    assert status == 200
    assert body["usage"]["prompt_tokens"] == count_tokens(tmp_path, expected)
    text = body["choices"][0]["message"]["content"]
    assert "<|im_start|>" not in text and not text.startswith("assistant")
    # The content-parts form is the same request.
    parts = [messages[0], {"role": "assistant", "content": [{"type": "text", "text": prefix}]}]
    status, body2 = post(server, "/v1/chat/completions", {"model": SMOLLM2, "messages": parts, "max_tokens": 8,
                                                          "temperature": 0})
    assert status == 200 and body2["choices"][0]["message"]["content"] == text
    assert body2["usage"]["prompt_tokens"] == body["usage"]["prompt_tokens"]


# ---- OpenAI shapes ----

def test_completion_text_offset_counts_from_the_prompt(server):
    prompt = "The capital of France is"
    status, body = post(server, "/v1/completions", {"model": SMOLLM2, "prompt": prompt, "max_tokens": 4,
                                                    "temperature": 0, "logprobs": 2})
    lp = body["choices"][0]["logprobs"]
    assert lp["text_offset"][0] == len(prompt)
    assert lp["text_offset"][1] == len(prompt) + len(lp["tokens"][0])


def test_completion_logprobs_zero_gives_the_chosen_tokens(server):
    status, body = post(server, "/v1/completions", {"model": SMOLLM2, "prompt": "Hello", "max_tokens": 3,
                                                    "temperature": 0, "logprobs": 0})
    lp = body["choices"][0]["logprobs"]
    assert status == 200 and len(lp["token_logprobs"]) == 3 and all(x <= 0 for x in lp["token_logprobs"])
    assert all(t == {} for t in lp["top_logprobs"])


@pytest.mark.parametrize("body,param", [
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"logprobs": False, "top_logprobs": 3}, "top_logprobs"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
])
def test_openai_argument_rules(server, body, param):
    status, out = post(server, "/v1/chat/completions", dict(
        {"model": SMOLLM2, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}, **body))
    assert status == 400 and out["error"]["param"] == param, out


def test_error_codes_are_strings_and_ranges_read_as_written(server):
    status, out = post(server, "/v1/chat/completions", {"model": "nope", "messages": [{"role": "user", "content": "x"}]})
    assert status == 404 and out["error"]["code"] == "model_not_found"
    status, out = post(server, "/v1/completions", {"model": SMOLLM2, "prompt": "word " * 5000, "max_tokens": 1})
    assert status == 400 and out["error"]["code"] == "context_length_exceeded", out
    status, out = post(server, "/v1/chat/completions", {"model": SMOLLM2, "messages": [{"role": "user", "content": "x"}],
                                                        "logprobs": True, "top_logprobs": 50})
    assert status == 400 and "between 0 and 20" in out["error"]["message"], out
    status, out = post(server, "/v1/completions", {"model": SMOLLM2, "prompt": "x", "top_p": 1.5})
    assert status == 400 and "between 0 and 1 " in out["error"]["message"], out
    with pytest.raises(openai.NotFoundError) as err:
        openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0).chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}])
    assert err.value.code == "model_not_found"


def test_failed_pull_does_not_claim_a_kept_download(tmp_path):
    # A hub that refuses connections: nothing was downloaded, so nothing is said to be kept.
    env = dict(os.environ, HF_ENDPOINT="http://127.0.0.1:9", HF_TOKEN="")
    out = subprocess.run([EMBER, "pull", "org/repo:model.gguf", "--dir", str(tmp_path / "models")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "kept" not in out.stderr + out.stdout, out.stderr
