"""`ember serve` at the HTTP level: curl against the native and Shimmy endpoints with SSE framing
checked byte by byte, keep-alive and pipelining, chunked bodies, 100-continue, HEAD, CORS, routes
and methods, malformed and hostile input (the server must answer clearly and stay up), slow and
vanishing clients, 16 concurrent streams against solo runs, and a clean SIGTERM."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from ember_server import EMBER, GEMMA3, SMOLLM2, SMOLLM2_FILE, EmberServer, wait_until  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with EmberServer(tmp_path_factory.mktemp("serve"), "--parallel", "4", "--ctx", "1024",
                     "--request-timeout", "2", "--max-body-mb", "1",
                     "--cors-origins", "http://allowed.example") as s:
        yield s
        # After everything below, the server must still be up and healthy.
        assert json.loads(curl(s, "/health")[2])["status"] == "healthy"


def curl(server, path, *args, body=None):
    """Returns (status, headers text, body) of one request made by curl."""
    cmd = ["curl", "-sS", "-N", "-D", "-", f"{server.url}{path}", *args]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary", body if isinstance(body, str) else json.dumps(body)]
    out = subprocess.run(cmd, capture_output=True, timeout=120).stdout.decode("utf-8", "replace")
    head, _, rest = out.partition("\r\n\r\n")
    while head.startswith("HTTP/1.1 100"):
        head, _, rest = rest.partition("\r\n\r\n")
    return int(head.split()[1]), head, rest


def raw(server, data, read_until_close=True, timeout=10):
    """Sends bytes on a fresh connection and returns everything received until it closes."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as s:
        s.sendall(data)
        if not read_until_close:
            return s.recv(65536)
        chunks = []
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        except socket.timeout:
            pass
        return b"".join(chunks)


def sse_events(body):
    """Checks SSE framing byte by byte: every event is `data: <json>` ended by a blank line, the
    last is `data: [DONE]`. Returns the decoded JSON events."""
    assert body.endswith("data: [DONE]\n\n"), body[-200:]
    frames = body.split("\n\n")
    assert frames[-1] == "" and frames[-2] == "data: [DONE]"
    events = []
    for f in frames[:-2]:
        assert f.startswith("data: ") and "\n" not in f, repr(f)
        events.append(json.loads(f[len("data: "):]))
    return events


# ---- endpoints through curl ----

def test_native_generate(server):
    """Ollama's /api/generate: one object with `stream: false` (also carrying `choices` and
    `usage`, as ember answered before), else NDJSON lines ending with `done: true`."""
    args = {"model": GEMMA3, "prompt": "Q: What is the capital of France?\nA:", "raw": True,
            "options": {"num_predict": 8, "temperature": 0}}
    status, _, body = curl(server, "/api/generate", body=dict(args, stream=False))
    assert status == 200
    r = json.loads(body)
    assert "Paris" in r["response"] and r["done"] is True
    assert r["choices"][0]["text"] == r["response"] and r["choices"][0]["index"] == 0
    assert r["done_reason"] in ("stop", "length") and r["eval_count"] == r["usage"]["completion_tokens"] > 0

    status, head, body = curl(server, "/api/generate", body=args)  # streams by default
    assert status == 200 and "application/x-ndjson" in head and "Transfer-Encoding: chunked" in head
    lines = [json.loads(line) for line in body.splitlines() if line.strip()]
    assert "".join(x["response"] for x in lines) == r["response"]
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == r["done_reason"]
    assert all(x["done"] is False for x in lines[:-1])


def test_shimmy_generate(server):
    args = {"model": SMOLLM2, "prompt": "The capital of France is", "max_tokens": 6, "temperature": 0}
    status, _, body = curl(server, "/v1/generate", body=args)
    assert status == 200
    text = json.loads(body)["response"]
    assert isinstance(text, str) and text
    status, _, body = curl(server, "/v1/generate", body=dict(args, stream=True))
    events = sse_events(body)
    assert "".join(e["response"] for e in events) == text
    assert events[-1]["done"] is True


def test_chat_sse_byte_by_byte(server):
    status, head, body = curl(server, "/v1/chat/completions", body={
        "model": SMOLLM2, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "temperature": 0,
        "stream": True, "stream_options": {"include_usage": True}})
    assert status == 200 and "Cache-Control: no-cache" in head
    events = sse_events(body)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    assert len({e["id"] for e in events}) == 1
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] <= 5


def test_listing_health_metrics_root(server):
    status, _, body = curl(server, "/api/tags")
    names = [m["name"] for m in json.loads(body)["models"]]
    assert status == 200 and SMOLLM2 in names and GEMMA3 in names
    tag = next(m for m in json.loads(body)["models"] if m["name"] == SMOLLM2)
    assert tag["details"]["format"] == "gguf" and tag["details"]["family"] == "llama" and tag["size"] > 0
    health = json.loads(curl(server, "/v1/health")[2])
    assert health["status"] == "healthy" and health["models"]["found"] == 2 and health["backend"] == "cpu"
    status, head, body = curl(server, "/metrics")
    assert status == 200 and "text/plain" in head
    assert "# TYPE ember_requests_total counter" in body and "ember_queue_depth" in body
    assert "ember_time_to_first_token_seconds_sum" in body
    root = json.loads(curl(server, "/")[2])
    assert root["name"] == "ember" and "POST /v1/chat/completions" in root["endpoints"]
    status, _, body = curl(server, "/api/models/discover", "-X", "POST")
    assert status == 200 and json.loads(body)["models_found"] == 2


def test_routes_methods_and_errors(server):
    status, _, body = curl(server, "/nope")
    assert status == 404 and json.loads(body)["error"]["type"] == "not_found_error"
    status, head, _ = curl(server, "/v1/chat/completions")
    assert status == 405 and "Allow: POST" in head
    status, _, _ = curl(server, "/v1/models", "-X", "POST")
    assert status == 405
    status, _, body = curl(server, "/v1/chat/completions", body='{"model": "x", "messages": [')
    err = json.loads(body)["error"]
    assert status == 400 and "at byte" in err["message"] and err["code"] == "invalid_request_error"
    status, _, body = curl(server, "/v1/chat/completions", body=[1, 2])
    assert status == 400
    status, _, body = curl(server, "/v1/completions", body={"model": "ghost", "prompt": "x"})
    assert status == 404 and SMOLLM2 in json.loads(body)["error"]["message"]
    status, _, body = curl(server, "/v1/completions", body={"model": SMOLLM2, "prompt": "x", "max_tokens": "many"})
    assert status == 400 and json.loads(body)["error"]["param"] == "max_tokens"


def test_head_cors_and_preflight(server):
    out = raw(server, b"HEAD /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: " in head and body == b""
    status, head, _ = curl(server, "/v1/models", "-H", "Origin: http://allowed.example")
    assert "Access-Control-Allow-Origin: http://allowed.example" in head
    status, head, _ = curl(server, "/v1/models", "-H", "Origin: http://evil.example")
    assert "Access-Control-Allow-Origin" not in head
    status, head, _ = curl(server, "/v1/chat/completions", "-X", "OPTIONS", "-H", "Origin: http://allowed.example",
                           "-H", "Access-Control-Request-Method: POST",
                           "-H", "Access-Control-Request-Headers: authorization, content-type")
    assert status == 204 and "Access-Control-Allow-Methods:" in head
    assert "Access-Control-Allow-Headers: authorization, content-type" in head


# ---- HTTP mechanics on raw sockets ----

def test_keep_alive_and_pipelining(server):
    req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    out = raw(server, req + req + last)
    assert out.count(b"HTTP/1.1 200 OK") == 3
    assert out.rfind(b'"object":"list"') > out.rfind(b'"status":"healthy"')  # answered in order


def test_chunked_request_body_and_expect_continue(server):
    body = json.dumps({"model": SMOLLM2, "prompt": "Hello", "max_tokens": 2, "temperature": 0}).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7)) + b"0\r\n\r\n"
    out = raw(server, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      b"Connection: close\r\n\r\n" + chunked)
    assert out.startswith(b"HTTP/1.1 200") and b'"text_completion"' in out
    with socket.create_connection((server.host, server.port), timeout=30) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(body)
        rest = b""
        while (b := s.recv(65536)):
            rest += b
        assert rest.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("data,status", [
    (b"BLAH\r\n\r\n", b"400"),
    (b"GET / HTTP/9.9\r\n\r\n", b"505"),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", b"431"),
    (b"POST /v1/completions HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n", b"413"),
    (b"POST /v1/completions HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", b"400"),
    (b"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", b"400"),
    (b"GET / HTTP/1.1\r\n\x00\x01\x02\r\n\r\n", b"400"),
])
def test_malformed_requests_get_clear_errors(server, data, status):
    out = raw(server, data)
    assert out.startswith(b"HTTP/1.1 " + status), out[:200]
    assert b'"error"' in out and b"Connection: close" in out


FIELD_CASES = [
    # (field, bad value) for every field the generation endpoints read
    ("model", 5), ("model", ["a"]), ("prompt", 7), ("prompt", {"a": 1}), ("prompt", ["a", "b"]),
    ("temperature", "hot"), ("temperature", -0.5), ("temperature", 1e300), ("top_p", 2), ("top_p", "x"),
    ("top_k", -1), ("top_k", "x"), ("min_p", -1), ("min_p", [0.1]), ("max_tokens", -5), ("max_tokens", "x"),
    ("max_tokens", 1e30), ("max_completion_tokens", -1), ("stop", 5), ("stop", [1, 2]), ("seed", "abc"),
    ("seed", 1.5), ("repeat_penalty", -1), ("presence_penalty", 3), ("frequency_penalty", -3),
    ("logprobs", "yes"), ("logprobs", 99), ("n", 2), ("n", "x"), ("stream", "yes"), ("stream_options", 3),
]


@pytest.mark.parametrize("field,value", FIELD_CASES)
def test_wrong_types_and_ranges_are_400(server, field, value):
    body = {"model": SMOLLM2, "prompt": "hi", "max_tokens": 2, field: value}
    status, _, text = curl(server, "/v1/completions", body=body)
    err = json.loads(text)["error"]
    assert status == 400 and err["type"] == "invalid_request_error", (field, value, text)


@pytest.mark.parametrize("messages", [None, "hi", [], [5], [{"content": "x"}], [{"role": 3, "content": "x"}],
                                      [{"role": "user", "content": 5}], [{"role": "user", "content": [5]}],
                                      [{"role": "user", "content": [{"type": "text"}]}]])
def test_bad_messages_are_400(server, messages):
    status, _, text = curl(server, "/v1/chat/completions", body={"model": SMOLLM2, "messages": messages})
    assert status == 400 and json.loads(text)["error"]["param"] == "messages", text


def test_invalid_utf8_and_json(server):
    body = b'{"model": "' + SMOLLM2.encode() + b'", "prompt": "\xff\xfe bad \xc3", "max_tokens": 2}'
    body = body.replace(b"\\xff\\xfe", b"\xff\xfe").replace(b"\\xc3", b"\xc3")
    out = raw(server, b"POST /v1/completions HTTP/1.1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert out.startswith(b"HTTP/1.1 400") and b"not valid JSON" in out
    for bad in ['{"model": ', '{"a" 1}', 'nul', '{"model": "x"}}', '[1, 2', '{"max_tokens": 6e666666}',
                '{"model": "m", "prompt": "x", "seed": 99999999999999999999999}']:
        status, _, text = curl(server, "/v1/completions", body=bad)
        assert status == 400, bad


def test_queue_full_gets_503_with_retry_after(tmp_path):
    with EmberServer(tmp_path, "--parallel", "1", "--max-queue", "1", models=(SMOLLM2_FILE,)) as s:
        long_job = {"model": SMOLLM2, "prompt": "Once upon a time", "max_tokens": 300, "temperature": 0.7}
        results = []
        threads = [threading.Thread(target=lambda: results.append(curl(s, "/v1/completions", body=long_job)))
                   for _ in range(4)]
        for t in threads:
            t.start()
            time.sleep(0.1)
        for t in threads:
            t.join()
        statuses = sorted(r[0] for r in results)
        assert statuses.count(200) >= 2 and 503 in statuses, statuses
        busy = next(r for r in results if r[0] == 503)
        assert "Retry-After: 1" in busy[1]


def test_slow_trickle_body_gets_408(server):
    start = time.time()
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nContent-Length: 50\r\n\r\n")
        out = b""
        try:
            for _ in range(20):  # a byte every 0.4 s: the 2 s request timeout runs out first
                s.sendall(b"{")
                time.sleep(0.4)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while (b := s.recv(4096)):
                out += b
        except ConnectionResetError:
            pass
    assert out.startswith(b"HTTP/1.1 408") and time.time() - start < 9


def test_truncated_and_silent_clients_are_dropped(server):
    # A body that never completes: 408 after the request timeout (2 s here), connection closed.
    start = time.time()
    out = raw(server, b"POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"mod", timeout=10)
    assert out.startswith(b"HTTP/1.1 408") and time.time() - start < 6
    # Half a request line, then the client vanishes: nothing to answer, server unaffected.
    with socket.create_connection((server.host, server.port)) as s:
        s.sendall(b"GET /hea")
    # Garbage bytes of every value.
    raw(server, bytes(range(256)) * 4)
    assert curl(server, "/health")[0] == 200


def test_disconnect_mid_stream_frees_the_slot(server):
    body = json.dumps({"model": SMOLLM2, "prompt": "Once upon a time", "max_tokens": 400, "temperature": 0.7,
                       "stream": True}).encode()
    with socket.create_connection((server.host, server.port), timeout=30) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(0.3)
    active = lambda: json.loads(curl(server, "/health")[2])["slots"]["active"] == 0  # noqa: E731
    assert wait_until(active, timeout=5)
    assert json.loads(curl(server, "/health")[2])["requests"]["cancelled"] >= 1


# ---- concurrency ----

def test_sixteen_concurrent_streams_match_solo_runs(server):
    prompts = ["The capital of France is", "My favourite food is", "In the year 3000,", "def fibonacci(n):"]
    jobs = [{"model": SMOLLM2, "prompt": prompts[i % 4], "max_tokens": 16, "temperature": 0.8, "seed": 100 + i,
             "stream": True} for i in range(16)]

    def run(job):
        _, _, body = curl(server, "/v1/completions", body=job)
        events = sse_events(body)
        return "".join(e["choices"][0]["text"] for e in events)

    solo = [run(j) for j in jobs]
    together = [None] * 16

    def worker(i):
        together[i] = run(jobs[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == solo
    assert len(set(solo)) > 4  # the seeds made the outputs differ


# ---- shutdown ----

def open_stream(s, max_tokens):
    """Starts a streamed completion on a raw socket; returns (socket, first bytes received)."""
    body = json.dumps({"model": SMOLLM2, "prompt": "Once upon a time", "max_tokens": max_tokens,
                       "temperature": 0.7, "stream": True, "ignore_eos": True}).encode()
    sock = socket.create_connection((s.host, s.port), timeout=30)
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    first = sock.recv(4096)
    assert first.startswith(b"HTTP/1.1 200")
    return sock, first


def read_rest(sock, first):
    rest = first
    while (b := sock.recv(65536)):
        rest += b
    sock.close()
    assert rest.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")  # the stream was ended properly
    return rest


def test_q8_0_kv_cache(tmp_path):
    """`--cache-type q8_0` (EMBER_CACHE_TYPE): the server answers both models with a cache of
    GGUF Q8_0 rows, `inspect --memory` sizes it at 34/64 of F16's, and a name ember does not know
    stops the server at start with one that names the choices."""
    with EmberServer(tmp_path, "--ctx", "2048", env={"EMBER_CACHE_TYPE": "q8_0"}) as s:
        for model in (SMOLLM2, GEMMA3):
            status, _, out = curl(s, "/v1/chat/completions", body={
                "model": model, "max_tokens": 40, "temperature": 0,
                "messages": [{"role": "user", "content": "Name three colours."}]})
            assert status == 200, out
            assert json.loads(out)["choices"][0]["message"]["content"].strip(), out
    sizes = {}
    for cache in ("f16", "q8_0"):
        sizes[cache] = json.loads(subprocess.run(
            [EMBER, "inspect", "--memory", "--json", "--ctx", "2048", "--cache-type", cache,
             str(SMOLLM2_FILE)], capture_output=True, text=True, check=True).stdout)
        assert sizes[cache]["cache_type"] == cache
    assert sizes["q8_0"]["kv_cache_bytes"] * 64 == sizes["f16"]["kv_cache_bytes"] * 34
    bad = subprocess.run([EMBER, "serve", "--bind", "127.0.0.1:0", "--cache-type", "q4"],
                         capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert bad.returncode == 2 and "--cache-type: unknown KV cache type 'q4'" in bad.stderr, bad.stderr
    bad = subprocess.run([EMBER, "serve", "--bind", "127.0.0.1:0"], capture_output=True, text=True,
                         timeout=30, cwd=tmp_path, env=dict(os.environ, EMBER_CACHE_TYPE="q5"))
    assert bad.returncode == 2 and "EMBER_CACHE_TYPE: unknown" in bad.stderr, bad.stderr
    # A GPU backend cannot hold it yet: said at start, not as a 500 on every request.
    bad = subprocess.run([EMBER, "serve", "--bind", "127.0.0.1:0", "--backend", "vulkan",
                          "--cache-type", "q8_0"], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert bad.returncode == 2, bad.stderr
    assert "CPU backend only" in bad.stderr or "vulkan" in bad.stderr.lower(), bad.stderr


def test_sigterm_drains_then_exits_zero(tmp_path):
    """SIGTERM: /ready turns 503 at once, new work gets 503 + Retry-After in its API's shape,
    reads still answer, the stream in flight runs to its end, then the process exits 0."""
    with EmberServer(tmp_path, "--drain-timeout", "120", models=(SMOLLM2_FILE,)) as s:
        assert curl(s, "/ready")[0] == 200
        sock, first = open_stream(s, 500)
        s.proc.send_signal(signal.SIGTERM)
        assert wait_until(lambda: curl(s, "/ready")[0] == 503, timeout=5)
        status, headers, body = curl(s, "/ready")
        assert json.loads(body) == {"status": "draining"} and "retry-after: 5" in headers.lower()
        status, headers, body = curl(s, "/v1/chat/completions", body={
            "model": SMOLLM2, "messages": [{"role": "user", "content": "hi"}]})
        assert status == 503 and "retry-after: 5" in headers.lower(), (status, headers)
        assert json.loads(body)["error"]["code"] == "server_shutting_down"
        status, _, body = curl(s, "/api/chat", body={"model": SMOLLM2, "messages": []})
        assert status == 503 and "shutting down" in json.loads(body)["error"]  # Ollama's shape
        status, _, body = curl(s, "/v1/messages", body={"model": SMOLLM2, "max_tokens": 5, "messages": []})
        assert status == 503 and json.loads(body)["type"] == "error"  # Anthropic's shape
        status, headers, _ = curl(s, "/v1/models")
        assert status == 200 and "connection: close" in headers.lower()  # no keep-alive now
        assert curl(s, "/health")[0] == 200
        rest = read_rest(sock, first)
        finals = [json.loads(line[6:]) for line in rest.decode().split("\n")
                  if line.startswith("data: {") and '"finish_reason":"length"' in line]
        assert finals, "the stream was cut short instead of running to max_tokens"
        assert s.proc.wait(timeout=10) == 0
        log = s.log()  # the stream was still running when the drain began
        assert log.index("draining") < log.index("completion_tokens=500"), log


def test_drain_timeout_ends_what_is_still_running(tmp_path):
    """A stream longer than --drain-timeout is ended cleanly at the deadline; exit 0."""
    with EmberServer(tmp_path, "--drain-timeout", "1", "--ctx", "8192", models=(SMOLLM2_FILE,)) as s:
        sock, first = open_stream(s, 8000)
        start = time.time()
        s.proc.send_signal(signal.SIGTERM)
        read_rest(sock, first)
        assert s.proc.wait(timeout=10) == 0
        assert 0.8 < time.time() - start < 6
        assert "drain timeout: ending 1 request(s) still in flight" in s.log()


def test_second_signal_ends_the_drain_at_once(tmp_path):
    with EmberServer(tmp_path, "--drain-timeout", "120", "--ctx", "8192", models=(SMOLLM2_FILE,)) as s:
        sock, first = open_stream(s, 8000)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        start = time.time()
        s.proc.send_signal(signal.SIGINT)
        read_rest(sock, first)
        assert s.proc.wait(timeout=10) == 0 and time.time() - start < 5


def test_speculative_decoding_changes_nothing_but_speed(server):
    """Guessed tokens verified in the same forward pass (model/speculative.h): with four requests
    at once, greedy and seeded sampling, on both models, the text is the same with guessing off,
    on by number or by `true` — and the next request reusing the cache after rejected guesses
    too. The guesses show in /metrics; a bad value is a 400 naming the field."""
    text = ("The quick brown fox jumps over the lazy dog. It was a sunny day in the valley, and the "
            "farmers were busy harvesting the wheat before the rain came. Teh children played near "
            "the river while their parents worked in the fields.")
    prompt = "Fix the typo and repeat the paragraph otherwise unchanged: " + text

    def ask(model, speculative, temperature, seed=0):
        body = {"model": model, "max_tokens": 60, "temperature": temperature, "seed": seed,
                "messages": [{"role": "user", "content": prompt}]}
        if speculative is not None:
            body["speculative"] = speculative
        status, _, out = curl(server, "/v1/chat/completions", body=body)
        assert status == 200, out
        return json.loads(out)["choices"][0]["message"]["content"]

    def metric(name):
        body = curl(server, "/metrics")[2]
        return float(next(line.split()[1] for line in body.splitlines() if line.startswith(name + " ")))

    drafted = metric("ember_speculative_draft_tokens_total")
    for model in (SMOLLM2, GEMMA3):
        for temperature, seed in ((0, 0), (0.8, 5)):
            settings = [0, 6, True, None]
            results = [None] * len(settings)

            def run(i):
                results[i] = ask(model, settings[i], temperature, seed)
            threads = [threading.Thread(target=run, args=(i,)) for i in range(len(settings))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert all(r == results[0] for r in results), (model, temperature, results)
            assert ask(model, 6, temperature, seed) == results[0]  # after the cache was reused
    assert metric("ember_speculative_draft_tokens_total") > drafted
    assert metric("ember_speculative_accepted_tokens_total") > 0
    for bad in ("many", 65, -1):
        status, _, out = curl(server, "/v1/chat/completions", body={
            "model": SMOLLM2, "speculative": bad, "messages": [{"role": "user", "content": "x"}]})
        assert status == 400 and json.loads(out)["error"]["param"] == "speculative", out
