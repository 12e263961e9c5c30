"""Several replicas as one service: three `ember serve` processes on one models directory with
inotify off (as on a network volume, where it sees nothing another host writes) behind Debian's
nginx as the load balancer, pulling from the mock hub.
- Two replicas asked to pull the same file at once download it once (the hub counts GETs); the
  second reports `joined` and completes with the file the first wrote.
- The model is servable through every replica within the rescan interval.
- Requests through nginx spread over all three.
- SIGTERM to a replica mid-stream: its stream finishes, nginx stops routing to it (503 while it
  drains, refused once it exits: both retried on another replica), no client sees an error.
- DELETE on one replica: the others answer 404 for the model after their next rescan."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "server"))
from ember_server import SMOLLM2, SMOLLM2_FILE, EmberServer, wait_until  # noqa: E402
from mock_hub import MockHub, Repo  # noqa: E402

SYNTHETIC = pathlib.Path(os.environ.get(
    "EMBER_TESTDATA", pathlib.Path(__file__).parents[3] / "shared" / "testdata")) / "synthetic"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
RESCAN = 1  # seconds

NGINX_CONF = """
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream ember {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://ember;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;          # streams pass through as they are written
            proxy_read_timeout 120s;
            # A draining replica answers new work with 503 and nothing was done: try the next
            # one (for POSTs too); a replica that has exited refuses the connection: likewise.
            proxy_next_upstream error timeout http_503 non_idempotent;
        }}
    }}
}}
"""


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def nginx_for(tmp_path):
    if NGINX is None:
        pytest.skip("nginx is not installed (scripts/install-deps.sh installs nginx-light)")
    procs = []

    def start(replicas):
        d = tmp_path / "nginx"
        d.mkdir()
        port = free_port()
        servers = "\n".join(f"        server {r.host}:{r.port} max_fails=1 fail_timeout=30s;" for r in replicas)
        user = "user root;" if os.geteuid() == 0 else ""
        (d / "nginx.conf").write_text(NGINX_CONF.format(dir=d, port=port, servers=servers, user=user))
        p = subprocess.Popen([NGINX, "-p", str(d), "-c", str(d / "nginx.conf"), "-g", "daemon off;"],
                             stderr=subprocess.PIPE, text=True)
        procs.append(p)
        url = f"http://127.0.0.1:{port}"

        def up():
            try:
                return urllib.request.urlopen(url + "/health", timeout=2).status == 200
            except OSError:
                return False
        assert wait_until(up, timeout=10), (d / "error.log").read_text() if (d / "error.log").exists() else ""
        return url

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def post(url, path, body, timeout=120):
    req = urllib.request.Request(url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def ids(url):
    return {m["id"] for m in json.loads(urllib.request.urlopen(url + "/v1/models", timeout=10).read())["data"]}


def chat(url, max_tokens=8, stream=False, ignore_eos=False):
    return post(url, "/v1/chat/completions", {"model": SMOLLM2, "max_tokens": max_tokens, "stream": stream,
                                              "ignore_eos": ignore_eos,
                                              "messages": [{"role": "user", "content": "Say hi"}]})


def active(replica):
    return json.loads(urllib.request.urlopen(replica.url + "/health").read())["slots"]["active"]


def test_three_replicas_behind_nginx(tmp_path, nginx_for):
    hub = MockHub()
    try:
        tiny = (SYNTHETIC / "tiny-llama-q8_0.gguf").read_bytes()
        hub.add("test/tiny", Repo({"tiny-llama-q8_0.gguf": tiny}, faults={"tiny-llama-q8_0.gguf": "slow"}))
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": ""}
        args = ["--no-watch", "--rescan-interval", str(RESCAN), "--parallel", "2", "--ctx", "1024",
                "--drain-timeout", "60"]
        with EmberServer(tmp_path, *args, env=env, models=(SMOLLM2_FILE,)) as a, \
                EmberServer(tmp_path, *args, env=env, models=()) as b, \
                EmberServer(tmp_path, *args, env=env, models=()) as c:
            replicas = [a, b, c]
            for r in replicas:
                assert wait_until(lambda: SMOLLM2 in ids(r.url), timeout=5)

            # 1. The same file pulled through two replicas at once: one download.
            results = {}

            def pull(name, r):
                status, body = post(r.url, "/api/pull", {"model": "test/tiny", "filename": "tiny-llama-q8_0.gguf"})
                results[name] = (status, [json.loads(line) for line in body.decode().splitlines()])
            threads = [threading.Thread(target=pull, args=(n, r)) for n, r in (("a", a), ("b", b))]
            threads[0].start()
            time.sleep(0.3)
            threads[1].start()
            for t in threads:
                t.join(timeout=120)
            for name, (status, lines) in results.items():
                assert status == 200 and lines[-1]["status"] == "complete", (name, lines)
            assert hub.gets("/tiny-llama-q8_0.gguf") == 1, results
            assert any(line["status"] == "joined" for line in results["b"][1]), results["b"]
            assert (tmp_path / "models" / "tiny-llama-q8_0.gguf").read_bytes() == tiny
            assert not [p.name for p in (tmp_path / "models").iterdir() if p.name.endswith((".part", ".lock"))]

            # 2. Servable through every replica within the rescan interval (c was not asked).
            for r in replicas:
                assert wait_until(lambda: "tiny-llama-q8-0" in ids(r.url), timeout=RESCAN + 2), r.url

            # 3. Through nginx, requests reach all three.
            lb = nginx_for(replicas)
            for _ in range(9):
                status, body = chat(lb)
                assert status == 200, body
            for r in replicas:
                assert "path=/v1/chat/completions status=200" in r.log(), r.log()

            # 4. SIGTERM to the replica serving a stream: the stream ends normally, and clients
            # going through nginx all the while never see an error.
            stream = {}
            streamer = threading.Thread(target=lambda: stream.update(zip(("status", "body"), chat(lb, 200, True, True))))
            streamer.start()
            assert wait_until(lambda: any(active(r) for r in replicas), timeout=10)
            victim = next(r for r in replicas if active(r))
            others = [r for r in replicas if r is not victim]
            errors, done = [], threading.Event()

            def keep_asking():
                while not done.is_set():
                    status, body = chat(lb, 2)
                    if status != 200:
                        errors.append((status, body))
            clients = [threading.Thread(target=keep_asking) for _ in range(2)]
            for t in clients:
                t.start()
            time.sleep(0.3)
            victim.proc.send_signal(signal.SIGTERM)
            streamer.join(timeout=120)
            assert victim.proc.wait(timeout=30) == 0
            time.sleep(1)  # requests after its exit go elsewhere too
            done.set()
            for t in clients:
                t.join(timeout=60)
            assert stream["status"] == 200
            body = stream["body"].decode()
            assert body.rstrip().endswith("data: [DONE]") and '"finish_reason":"length"' in body, body[-500:]
            assert not errors, errors[:3]
            # The stream was still running when the drain began, and ran to its end.
            log = victim.log()
            assert log.index("draining") < log.index("completion_tokens=200"), log
            served = sum(r.log().count("path=/v1/chat/completions status=200") for r in others)
            assert served > 9, "the clients' requests did not reach the other replicas"

            # 5. DELETE through one replica: the other answers 404 after its rescan.
            first, second = others
            req = urllib.request.Request(first.url + "/api/models/tiny-llama-q8-0", method="DELETE")
            assert urllib.request.urlopen(req).status == 200
            assert wait_until(lambda: "tiny-llama-q8-0" not in ids(second.url), timeout=RESCAN + 2)
            status, _ = post(second.url, "/v1/completions", {"model": "tiny-llama-q8-0", "prompt": "x", "max_tokens": 2})
            assert status == 404
    finally:
        hub.close()
