"""Pulling from a (mock) Hugging Face hub through `POST /api/pull` and `ember pull`, and
discovery: pull → listed → chat completion in one server process, automatic Q4_K_M choice,
tokens for private repos, 404s, resume after a cut, wrong hashes, non-GGUF content, joined
concurrent pulls, queued downloads, path traversal, existing files untouched, deletion, and
directory changes picked up without a restart."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import openai
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from ember_server import EMBER, SMOLLM2_FILE, EmberServer, wait_until  # noqa: E402
from mock_hub import MockHub, Repo  # noqa: E402

SYNTHETIC = pathlib.Path(os.environ.get("EMBER_TESTDATA", pathlib.Path(__file__).parents[3] / "shared" / "testdata")) / "synthetic"
TINY_Q8 = (SYNTHETIC / "tiny-llama-q8_0.gguf").read_bytes()
TINY_Q4 = (SYNTHETIC / "tiny-llama-q4_0.gguf").read_bytes()


@pytest.fixture(scope="module")
def hub():
    h = MockHub()
    h.add("test/tiny", Repo({"tiny-llama-q8_0.gguf": TINY_Q8, "tiny-llama-Q4_K_M.gguf": TINY_Q4,
                             "tiny-llama-Q2_K.gguf": TINY_Q4, "README.md": b"# tiny"}))
    h.add("test/smol", Repo({SMOLLM2_FILE.name: SMOLLM2_FILE.read_bytes()}))
    h.add("test/private", Repo({"secret-q8_0.gguf": TINY_Q8}, private=True))
    h.add("test/faults", Repo({"cut.gguf": TINY_Q8, "bad.gguf": TINY_Q8, "junk.gguf": os.urandom(200000),
                               "slow.gguf": TINY_Q8, "slow2.gguf": TINY_Q4},
                              faults={"cut.gguf": "cut", "bad.gguf": "badhash", "junk.gguf": "notgguf",
                                      "slow.gguf": "slow", "slow2.gguf": "slow"}))
    h.add("test/docs", Repo({"README.md": b"no models here"}))
    yield h
    h.close()


@pytest.fixture(scope="module")
def server(hub, tmp_path_factory):
    with EmberServer(tmp_path_factory.mktemp("pull"), "--max-downloads", "1", models=(),
                     env={"HF_ENDPOINT": hub.url, "HF_TOKEN": ""}) as s:
        yield s


def pull(server, **body):
    """Posts a pull and returns its NDJSON lines as dicts (and the HTTP status)."""
    req = urllib.request.Request(server.url + "/api/pull", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            assert r.headers["Content-Type"] == "application/x-ndjson"
            return r.status, [json.loads(line) for line in r.read().decode().splitlines()]
    except urllib.error.HTTPError as e:
        return e.code, [json.loads(e.read())]


def model_ids(server):
    return [m["id"] for m in json.loads(urllib.request.urlopen(server.url + "/v1/models").read())["data"]]


def models_dir(server):
    return server.workdir / "models"


def test_pull_then_chat_in_one_process(server, hub):
    status, lines = pull(server, model="test/smol", filename=SMOLLM2_FILE.name)
    assert status == 200
    statuses = [l["status"] for l in lines]
    assert statuses[0] == "starting" and "downloading" in statuses and "verifying" in statuses
    last = lines[-1]
    assert last["status"] == "complete" and last["discovered"] is True, lines
    assert last["id"] == "smollm2-135m-instruct.q4-1"
    assert last["sha256"] == __import__("hashlib").sha256(SMOLLM2_FILE.read_bytes()).hexdigest()
    assert (models_dir(server) / SMOLLM2_FILE.name).exists()
    assert not list(models_dir(server).glob("*.part"))
    assert last["id"] in model_ids(server)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    r = client.chat.completions.create(model=last["id"], temperature=0, max_tokens=8,
                                       messages=[{"role": "user", "content": "What's the capital of France? Answer in one word."}])
    assert "Paris" in r.choices[0].message.content
    # The redirect went to the CDN without the token (the mock refuses it otherwise).
    assert any(p.startswith("/cdn/test/smol/") for _, p, _ in hub.requests)


def test_missing_filename_picks_q4_k_m(server):
    status, lines = pull(server, model="test/tiny")
    selected = next(l for l in lines if l["status"] == "selected")
    assert selected["filename"] == "tiny-llama-Q4_K_M.gguf" and "Q4_K_M" in selected["reason"]
    assert lines[-1]["status"] == "complete" and lines[-1]["id"] == "tiny-llama-q4-k-m"
    status, lines = pull(server, model="test/docs")
    assert lines[-1]["status"] == "error" and "no GGUF" in lines[-1]["error"]


def test_private_repo_needs_a_token(server, hub, tmp_path):
    status, lines = pull(server, model="test/private", filename="secret-q8_0.gguf")
    assert lines[-1]["status"] == "error" and "HF_TOKEN" in lines[-1]["error"]
    assert not (models_dir(server) / "secret-q8_0.gguf").exists()
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_TOKEN=hub.token)
    out = subprocess.run([EMBER, "pull", "test/private:secret-q8_0.gguf", "--dir", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "secret-q8_0.gguf").read_bytes() == TINY_Q8


def test_not_found(server):
    for body, word in [({"model": "test/none", "filename": "x.gguf"}, "not found"),
                       ({"model": "test/tiny", "filename": "missing.gguf"}, "not found"),
                       ({"model": "test/tiny", "filename": "tiny-llama-q8_0.gguf", "revision": "v9"}, "not found")]:
        status, lines = pull(server, **body)
        assert lines[-1]["status"] == "error" and word in lines[-1]["error"], lines


def test_cut_download_resumes(server, hub):
    status, lines = pull(server, model="test/faults", filename="cut.gguf")
    assert lines[-1]["status"] == "error" and "resume" in lines[-1]["error"], lines
    assert (models_dir(server) / "cut.gguf.part").exists() and not (models_dir(server) / "cut.gguf").exists()
    assert "cut" not in " ".join(model_ids(server))
    status, lines = pull(server, model="test/faults", filename="cut.gguf")
    assert lines[-1]["status"] == "complete", lines
    assert (models_dir(server) / "cut.gguf").read_bytes() == TINY_Q8
    ranges = [r for m, p, r in hub.requests if p.endswith("/cut.gguf") and m == "GET" and r]
    assert ranges and ranges[-1] == f"bytes={len(TINY_Q8) // 2}-"


@pytest.mark.parametrize("name,word", [("bad.gguf", "corrupt"), ("junk.gguf", "not a usable GGUF")])
def test_bad_downloads_leave_nothing(server, name, word):
    before = model_ids(server)
    status, lines = pull(server, model="test/faults", filename=name)
    assert lines[-1]["status"] == "error" and word in lines[-1]["error"], lines
    assert not (models_dir(server) / name).exists() and not (models_dir(server) / (name + ".part")).exists()
    assert model_ids(server) == before


def test_same_file_twice_joins_and_others_queue(server, hub):
    results = {}

    def run(key, **body):
        results[key] = pull(server, **body)[1]

    threads = [threading.Thread(target=run, args=("a",), kwargs={"model": "test/faults", "filename": "slow.gguf"}),
               threading.Thread(target=run, args=("b",), kwargs={"model": "test/faults", "filename": "slow.gguf"}),
               threading.Thread(target=run, args=("c",), kwargs={"model": "test/faults", "filename": "slow2.gguf"})]
    for t in threads:
        t.start()
        __import__("time").sleep(0.3)
    for t in threads:
        t.join()
    assert results["a"][-1]["status"] == "complete" and results["b"][-1]["status"] == "complete"
    assert any(l["status"] == "joined" for l in results["b"])
    assert sum(1 for m, p, _ in hub.requests if m == "GET" and p == "/cdn/test/faults/slow.gguf") == 1
    # --max-downloads 1: the other file waited its turn, and said so.
    assert any(l["status"] == "queued" for l in results["c"]) and results["c"][-1]["status"] == "complete"


@pytest.mark.parametrize("body", [{"model": "../etc", "filename": "x.gguf"}, {"model": "test/tiny", "filename": "../../x.gguf"},
                                  {"model": "test/tiny", "filename": "/abs.gguf"}, {"model": "test/tiny", "filename": "notes.txt"},
                                  {"model": "test/tiny", "revision": "../main"}, {"model": "tiny"}, {"model": 5}, {}])
def test_odd_names_are_rejected(server, body):
    status, lines = pull(server, **body)
    assert status == 400 and "error" in lines[0]


def test_bad_json_is_400(server):
    for body in [b'{"model": "test/tiny", "x": 1e999999}', b'{"model": ', b'[]']:
        req = urllib.request.Request(server.url + "/api/pull", body, {"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req)
        assert e.value.code == 400


def test_existing_files_are_never_touched(server):
    target = models_dir(server) / "tiny-llama-q8_0.gguf"
    target.write_bytes(TINY_Q4)  # a different file under the same name
    status, lines = pull(server, model="test/tiny", filename="tiny-llama-q8_0.gguf")
    assert lines[-1]["status"] == "complete" and "already present" in lines[-1]["note"]
    assert target.read_bytes() == TINY_Q4


def test_delete_and_directory_changes(server, tmp_path):
    d = models_dir(server)
    shutil.copy(SYNTHETIC / "tiny-llama-q5_0.gguf", d / "dropped-in-q5_0.gguf")
    assert wait_until(lambda: "dropped-in-q5-0" in model_ids(server), timeout=5)  # inotify, no restart
    (d / "dropped-in-q5_0.gguf").unlink()
    assert wait_until(lambda: "dropped-in-q5-0" not in model_ids(server), timeout=5)
    shutil.copy(SYNTHETIC / "tiny-llama-q5_1.gguf", d / "doomed-q5_1.gguf")
    assert wait_until(lambda: "doomed-q5-1" in model_ids(server), timeout=5)
    req = urllib.request.Request(server.url + "/api/models/doomed-q5-1", method="DELETE")
    r = json.loads(urllib.request.urlopen(req).read())
    assert r["status"] == "deleted" and not (d / "doomed-q5_1.gguf").exists()
    assert "doomed-q5-1" not in model_ids(server)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(server.url + "/api/models/ghost", method="DELETE"))
    assert e.value.code == 404


def test_cli_pull_plain_output(hub, tmp_path):
    env = dict(os.environ, HF_ENDPOINT=hub.url)
    out = subprocess.run([EMBER, "pull", "test/tiny:tiny-llama-q8_0.gguf", "--dir", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "starting" in out.stderr and "verifying" in out.stderr and "(id tiny-llama-q8-0)" in out.stderr
    assert (tmp_path / "tiny-llama-q8_0.gguf").read_bytes() == TINY_Q8
    out = subprocess.run([EMBER, "pull", "test/faults:junk.gguf", "--dir", str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "not a usable GGUF" in out.stderr
    out = subprocess.run([EMBER, "pull", "../x"], env=env, capture_output=True, text=True)
    assert out.returncode == 2
