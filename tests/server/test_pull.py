"""Pulling from a (mock) Hugging Face hub through `POST /api/pull` and `ember pull`, and
discovery: pull → listed → chat completion in one server process, automatic Q4_K_M choice,
tokens for private repos, 404s, resume after a cut, wrong hashes, non-GGUF content, joined
concurrent pulls, queued downloads, path traversal, existing files untouched, deletion, and
directory changes picked up without a restart.

Then the store's rules (issue 21, one test per item): one writer per destination across threads
and processes, "already present" only for the file asked for, broken files replaced,
unverifiable resumes checked, split models, retries, cancellation (DELETE, hang-up, stalls,
SIGTERM), quantisation names, tokens, a full disk and GET /."""
import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
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
    # Issue 21 changed this: a different model file under the requested name is still kept as it
    # is, but is no longer reported as the file asked for; the download gets a distinct name.
    target = models_dir(server) / "tiny-llama-q8_0.gguf"
    target.write_bytes(TINY_Q4)  # a different file under the same name
    status, lines = pull(server, model="test/tiny", filename="tiny-llama-q8_0.gguf")
    last = lines[-1]
    assert last["status"] == "complete" and "already present" not in last.get("note", ""), lines
    assert target.read_bytes() == TINY_Q4
    stored = f"tiny-llama-q8_0-{hashlib.sha256(TINY_Q8).hexdigest()[:8]}.gguf"
    assert last["filename"] == stored and (models_dir(server) / stored).read_bytes() == TINY_Q8
    assert any(l["status"] == "destination" and stored in l["note"] for l in lines), lines


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


# ---- The store never lies (issue 21) ----

TINY_Q5 = (SYNTHETIC / "tiny-llama-q5_0.gguf").read_bytes()
TINY_Q6 = (SYNTHETIC / "tiny-llama-q6_k.gguf").read_bytes()


def cli(*args, env=None, **kwargs):
    """Starts `ember pull ARGS` (stderr captured); returns the Popen."""
    return subprocess.Popen([EMBER, "pull", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def hub_env(hub, **extra):
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME="/nonexistent", HF_TOKEN="")
    env.update(extra)
    return env


def in_background(server, **body):
    """Posts a pull on a thread; returns (thread, result list that gets its lines)."""
    result = []
    t = threading.Thread(target=lambda: result.extend(pull(server, **body)[1]))
    t.start()
    return t, result


def downloads(server):
    return json.loads(urllib.request.urlopen(server.url + "/").read())["downloads"]


def leftovers(d):
    return sorted(p.name for p in pathlib.Path(d).iterdir() if p.name.endswith((".part", ".lock")))


# 1. One writer per destination.
def test_two_cli_pulls_of_one_file_write_it_once(hub, tmp_path):
    hub.add("test/one", Repo({"one-q8_0.gguf": TINY_Q8}, faults={"one-q8_0.gguf": "slow"}))
    env = hub_env(hub)
    first = cli("test/one:one-q8_0.gguf", "--dir", str(tmp_path), env=env)
    time.sleep(0.5)
    second = cli("test/one:one-q8_0.gguf", "--dir", str(tmp_path), env=env)
    errs = [first.communicate(timeout=60)[1], second.communicate(timeout=60)[1]]
    assert first.returncode == 0 and second.returncode == 0, errs
    assert (tmp_path / "one-q8_0.gguf").read_bytes() == TINY_Q8
    assert hub.gets("/test/one/one-q8_0.gguf") == 1, errs  # the second waited, then found it
    assert "waiting" in errs[1] and "already present" in errs[1], errs[1]
    assert leftovers(tmp_path) == []


def test_server_and_cli_share_one_writer(server, hub):
    hub.add("test/shared", Repo({"shared-q8_0.gguf": TINY_Q8}, faults={"shared-q8_0.gguf": "slow"}))
    t, lines = in_background(server, model="test/shared", filename="shared-q8_0.gguf")
    time.sleep(0.7)
    out = cli("test/shared:shared-q8_0.gguf", "--dir", str(models_dir(server)), env=hub_env(hub))
    err = out.communicate(timeout=60)[1]
    t.join()
    assert out.returncode == 0 and lines[-1]["status"] == "complete", (err, lines)
    assert lines[-1]["sha256"] == hashlib.sha256(TINY_Q8).hexdigest()
    assert (models_dir(server) / "shared-q8_0.gguf").read_bytes() == TINY_Q8
    assert hub.gets("/test/shared/shared-q8_0.gguf") == 1


def test_by_name_and_by_automatic_choice_join(server, hub):
    hub.add("test/pick", Repo({"pick-Q4_K_M.gguf": TINY_Q4, "pick-Q8_0.gguf": TINY_Q8},
                              faults={"pick-Q4_K_M.gguf": "slow"}))
    a, by_choice = in_background(server, model="test/pick")
    time.sleep(0.7)
    b, by_name = in_background(server, model="test/pick", filename="pick-Q4_K_M.gguf")
    a.join()
    b.join()
    assert by_choice[-1]["status"] == "complete" and by_name[-1]["status"] == "complete"
    assert any(l["status"] == "joined" for l in by_name), by_name
    assert hub.gets("/test/pick/pick-Q4_K_M.gguf") == 1


def lock_file(path, pid, host, age=0):
    path.write_text(f"{pid} {host} 0123456789abcdef\n")
    if age:
        os.utime(path, (time.time() - age, time.time() - age))


def test_stale_locks_are_taken_over_and_live_ones_waited_for(hub, tmp_path):
    hub.add("test/locks", Repo({"dead-q8_0.gguf": TINY_Q8, "silent-q8_0.gguf": TINY_Q8, "live-q8_0.gguf": TINY_Q8}))
    env = hub_env(hub)
    gone = subprocess.Popen(["true"])
    gone.wait()
    lock_file(tmp_path / "dead-q8_0.gguf.part.lock", gone.pid, socket.gethostname())
    lock_file(tmp_path / "silent-q8_0.gguf.part.lock", 1, "another-host", age=3600)
    for name, why in [("dead-q8_0.gguf", "is gone"), ("silent-q8_0.gguf", "no heartbeat")]:
        out = subprocess.run([EMBER, "pull", f"test/locks:{name}", "--dir", str(tmp_path)], env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "took over a stale lock" in out.stderr and why in out.stderr, out.stderr
        assert (tmp_path / name).read_bytes() == TINY_Q8
    live = tmp_path / "live-q8_0.gguf.part.lock"
    lock_file(live, os.getpid(), socket.gethostname())  # this test process holds it
    waiting = cli("test/locks:live-q8_0.gguf", "--dir", str(tmp_path), env=env)
    time.sleep(1.5)
    assert waiting.poll() is None and not (tmp_path / "live-q8_0.gguf").exists()
    live.unlink()
    err = waiting.communicate(timeout=60)[1]
    assert waiting.returncode == 0 and f"process {os.getpid()}" in err, err
    assert (tmp_path / "live-q8_0.gguf").read_bytes() == TINY_Q8 and leftovers(tmp_path) == []


# 2. "Already present" only for the file asked for.
def test_a_same_named_file_is_not_taken_for_the_requested_one(server, hub):
    hub.add("test/layout", Repo({"Q4_K_M/model.gguf": TINY_Q4, "Q8_0/model.gguf": TINY_Q8}))
    hub.add("test/other", Repo({"model.gguf": TINY_Q5}))
    d = models_dir(server)
    lines = pull(server, model="test/layout", filename="Q4_K_M/model.gguf")[1]
    assert lines[-1]["status"] == "complete" and lines[-1]["filename"] == "model.gguf", lines
    lines = pull(server, model="test/layout", filename="Q8_0/model.gguf")[1]
    assert lines[-1]["status"] == "complete" and lines[-1]["filename"] == "model-Q8_0.gguf", lines
    assert "already present" not in lines[-1].get("note", "")
    assert any(l["status"] == "destination" and "model-Q8_0.gguf" in l["note"] for l in lines)
    assert (d / "model.gguf").read_bytes() == TINY_Q4 and (d / "model-Q8_0.gguf").read_bytes() == TINY_Q8
    assert lines[-1]["id"] in model_ids(server)
    again = pull(server, model="test/layout", filename="Q8_0/model.gguf")[1][-1]  # deterministic
    assert again["filename"] == "model-Q8_0.gguf" and "already present" in again["note"], again
    other = pull(server, model="test/other", filename="model.gguf")[1][-1]
    assert other["filename"] == f"model-{hashlib.sha256(TINY_Q5).hexdigest()[:8]}.gguf", other
    assert (d / other["filename"]).read_bytes() == TINY_Q5


# 3. A broken file in the way is replaced by the verified download.
@pytest.mark.parametrize("content", [b"", TINY_Q8[:len(TINY_Q8) // 3]], ids=["empty", "truncated"])
def test_a_broken_file_in_the_way_is_replaced(server, hub, content):
    name = f"victim-{len(content)}-q8_0.gguf"
    hub.add("test/victim", Repo({name: TINY_Q8}))
    (models_dir(server) / name).write_bytes(content)
    last = pull(server, model="test/victim", filename=name)[1][-1]
    assert last["status"] == "complete" and last["discovered"] is True and last["id"], last
    assert (models_dir(server) / name).read_bytes() == TINY_Q8 and "replaced" in last["note"]
    assert last["id"] in model_ids(server)


# 4. A partial download without a sha256 is checked before it is resumed.
def test_an_unverifiable_partial_download_is_not_trusted(server, hub):
    hub.add("test/noetag", Repo({"plain-q8_0.gguf": TINY_Q8}, faults={"plain-q8_0.gguf": "noetag,cut"}))
    lines = pull(server, model="test/noetag", filename="plain-q8_0.gguf")[1]
    assert lines[-1]["status"] == "error" and "resume" in lines[-1]["error"], lines
    part = models_dir(server) / "plain-q8_0.gguf.part"
    data = part.read_bytes()
    part.write_bytes(data[:-4096] + bytes(4096))  # its tail zeroed, as after a crash
    lines = pull(server, model="test/noetag", filename="plain-q8_0.gguf")[1]
    assert lines[-1]["status"] == "complete" and lines[-1]["verified"] is False, lines
    assert (models_dir(server) / "plain-q8_0.gguf").read_bytes() == TINY_Q8
    assert any(l["status"] == "warning" and "no sha256" in l["warning"] for l in lines), lines
    assert any("does not match" in l.get("note", "") for l in lines), lines


# 5. Split models: every part, part 1 last; single files preferred.
def split_model(prefix, count=3):
    """A tiny split GGUF set {name: bytes} (one F32 tensor per part)."""
    import gguf
    import numpy as np
    import tempfile
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):
            name = f"{prefix}-{i + 1:05d}-of-{count:05d}.gguf"
            w = gguf.GGUFWriter(os.path.join(tmp, name), "llama")
            w.add_name(prefix)
            w.add_uint16("split.no", i)
            w.add_uint16("split.count", count)
            if i == 0:
                w.add_int32("split.tensors.count", count)
            w.add_tensor(f"t{i}", np.arange(64, dtype=np.float32) + i)
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_tensors_to_file()
            w.close()
            out[name] = pathlib.Path(tmp, name).read_bytes()
    return out


def test_split_models_are_pulled_whole(server, hub, tmp_path):
    parts = split_model("tiny-split-Q4_K_M")
    hub.add("test/split", Repo({**parts, "README.md": b"#"}))
    lines = pull(server, model="test/split")[1]
    last = lines[-1]
    assert last["status"] == "complete" and last["filename"] == "tiny-split-Q4_K_M-00001-of-00003.gguf", lines
    assert last["files"] == list(parts) and last["discovered"] is True, last
    for name, data in parts.items():
        assert (models_dir(server) / name).read_bytes() == data
    assert not list(models_dir(server).glob("tiny-split*.part*"))
    # Any part's name pulls the whole set (here with the CLI, into another directory).
    out = subprocess.run([EMBER, "pull", "test/split:tiny-split-Q4_K_M-00002-of-00003.gguf", "--dir", str(tmp_path)],
                         env=hub_env(hub), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(parts)


def test_the_automatic_choice_prefers_a_single_file(server, hub):
    # The layout of big repos: a split set in a folder per quantisation, listed first.
    parts = {"Q4_K_M/" + name: data for name, data in split_model("both-Q4_K_M", count=2).items()}
    hub.add("test/both", Repo({**parts, "both-Q4_K_M.gguf": TINY_Q4, "both-Q8_0.gguf": TINY_Q8}))
    lines = pull(server, model="test/both")[1]
    selected = next(l for l in lines if l["status"] == "selected")
    assert selected["filename"] == "both-Q4_K_M.gguf" and "split" in selected["reason"], selected
    assert "Q8_0" in selected["alternatives"] and lines[-1]["status"] == "complete"


# 6. Network faults.
def test_temporary_hub_errors_are_retried(server, hub):
    hub.add("test/flaky", Repo({"a-q8_0.gguf": TINY_Q8, "b-q8_0.gguf": TINY_Q8, "c-q8_0.gguf": TINY_Q8},
                               faults={"a-q8_0.gguf": "503x2", "b-q8_0.gguf": "429x1", "c-q8_0.gguf": "502x1"}))
    for name in ["a-q8_0.gguf", "b-q8_0.gguf", "c-q8_0.gguf"]:
        lines = pull(server, model="test/flaky", filename=name)[1]
        assert lines[-1]["status"] == "complete", lines
        assert any(l["status"] == "retrying" for l in lines), lines
        assert (models_dir(server) / name).read_bytes() == TINY_Q8


def test_retries_resume_with_range_and_give_up(server, hub):
    hub.add("test/down", Repo({"resume-q8_0.gguf": TINY_Q8, "down-q8_0.gguf": TINY_Q8},
                              faults={"resume-q8_0.gguf": "503x1", "down-q8_0.gguf": "503x99"}))
    half = len(TINY_Q8) // 2
    (models_dir(server) / "resume-q8_0.gguf.part").write_bytes(TINY_Q8[:half])
    lines = pull(server, model="test/down", filename="resume-q8_0.gguf")[1]
    assert lines[-1]["status"] == "complete", lines
    ranges = [r for m, p, r in hub.requests if m == "GET" and p.startswith("/cdn/") and p.endswith("/resume-q8_0.gguf")]
    assert ranges == [f"bytes={half}-"] * 2, ranges
    lines = pull(server, model="test/down", filename="down-q8_0.gguf")[1]
    assert lines[-1]["status"] == "error" and "gave up after 4 attempts" in lines[-1]["error"], lines
    assert "503" in lines[-1]["error"] and hub.gets("/test/down/down-q8_0.gguf") == 4


def wait_for_download(server, name, timeout=10):
    assert wait_until(lambda: any(d["id"] == name and d["completed"] > 0 for d in downloads(server)), timeout), downloads(server)


def test_a_stalled_pull_can_be_cancelled_with_delete(server, hub):
    hub.add("test/stall", Repo({"stall1-q8_0.gguf": TINY_Q8}, faults={"stall1-q8_0.gguf": "stall"}))
    t, lines = in_background(server, model="test/stall", filename="stall1-q8_0.gguf")
    wait_for_download(server, "stall1-q8_0.gguf")
    req = urllib.request.Request(server.url + "/api/pull/stall1-q8_0.gguf", method="DELETE")
    assert json.loads(urllib.request.urlopen(req).read())["cancelled"] == ["stall1-q8_0.gguf"]
    t.join(timeout=10)
    assert lines[-1]["status"] == "error" and "cancelled by DELETE" in lines[-1]["error"], lines
    assert not downloads(server) and (models_dir(server) / "stall1-q8_0.gguf.part").exists()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(server.url + "/api/pull/nothing.gguf", method="DELETE"))
    assert e.value.code == 404
    assert pull(server, model="test/stall", filename="stall1-q8_0.gguf")[1][-1]["status"] == "complete"
    assert (models_dir(server) / "stall1-q8_0.gguf").read_bytes() == TINY_Q8


def test_a_client_hanging_up_cancels_its_pull(server, hub):
    hub.add("test/hangup", Repo({"stall2-q8_0.gguf": TINY_Q8}, faults={"stall2-q8_0.gguf": "stall"}))
    body = json.dumps({"model": "test/hangup", "filename": "stall2-q8_0.gguf"}).encode()
    with socket.create_connection((server.host, server.port)) as s:
        s.sendall(b"POST /api/pull HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        wait_for_download(server, "stall2-q8_0.gguf")
    # The only client left: nobody follows the pull, so it stops (the partial file stays).
    assert wait_until(lambda: not downloads(server), timeout=5), downloads(server)
    assert (models_dir(server) / "stall2-q8_0.gguf.part").exists()


def test_a_stalled_transfer_is_not_joined(server, hub):
    hub.add("test/stall3", Repo({"stall3-q8_0.gguf": TINY_Q8}, faults={"stall3-q8_0.gguf": "stall"}))
    a, first = in_background(server, model="test/stall3", filename="stall3-q8_0.gguf")
    wait_for_download(server, "stall3-q8_0.gguf")
    time.sleep(11)  # PullManager::kNoProgress
    b, second = in_background(server, model="test/stall3", filename="stall3-q8_0.gguf")
    a.join(timeout=20)
    b.join(timeout=30)
    assert first[-1]["status"] == "error" and "no data arrived" in first[-1]["error"], first
    assert second[-1]["status"] == "complete" and not any(l["status"] == "joined" for l in second), second
    assert (models_dir(server) / "stall3-q8_0.gguf").read_bytes() == TINY_Q8


def test_sigterm_ends_pull_streams_even_while_the_hub_hangs(hub, tmp_path):
    """Pulls are work in flight: the drain waits for them, but no longer than --drain-timeout,
    even while the hub hangs; then their streams end with an error line."""
    hub.add("test/hanghead", Repo({"h-q8_0.gguf": TINY_Q8}, faults={"h-q8_0.gguf": "hanghead"}))
    hub.add("test/hanglist", Repo({"l-q8_0.gguf": TINY_Q8}, hang_listing=True))
    with EmberServer(tmp_path, "--drain-timeout", "1", models=(),
                     env={"HF_ENDPOINT": hub.url, "HF_TOKEN": ""}) as s:
        a, head = in_background(s, model="test/hanghead", filename="h-q8_0.gguf")
        b, listing = in_background(s, model="test/hanglist")
        time.sleep(1.5)  # both are waiting for the hub now
        began = time.time()
        s.proc.send_signal(signal.SIGTERM)
        a.join(timeout=10)
        b.join(timeout=10)
        assert s.proc.wait(timeout=10) == 0 and 0.9 < time.time() - began < 4
    assert "drain timeout: ending 2 request(s) still in flight" in s.log()
    for lines in (head, listing):
        assert lines[-1] == {"status": "error", "error": "the server is shutting down"}, lines


# 7. Drop-in names and messages.
def test_quantisation_names(server, hub, tmp_path):
    hub.add("test/quants", Repo({"q-Q4_K_M.gguf": TINY_Q4, "q-Q8_0.gguf": TINY_Q8, "q-Q6_K.gguf": TINY_Q6}))
    last = pull(server, model="test/quants:Q8_0")[1][-1]
    assert last["status"] == "complete" and last["filename"] == "q-Q8_0.gguf", last
    last = pull(server, model="hf.co/test/quants:q6_k")[1][-1]
    assert last["status"] == "complete" and last["filename"] == "q-Q6_K.gguf", last
    last = pull(server, model="test/quants:Q5_K_M")[1][-1]
    assert last["status"] == "error" and "no Q5_K_M" in last["error"], last
    assert all(q in last["error"] for q in ("Q4_K_M", "Q8_0", "Q6_K"))
    out = subprocess.run([EMBER, "pull", "hf.co/test/quants:latest", "--dir", str(tmp_path)],
                         env=hub_env(hub), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and (tmp_path / "q-Q4_K_M.gguf").read_bytes() == TINY_Q4, out.stderr
    assert "other quantisations: Q6_K, Q8_0" in out.stderr, out.stderr


def test_tokens_from_the_login_file_and_without_access(hub, tmp_path):
    hub.add("test/gated", Repo({"gated-q8_0.gguf": TINY_Q8}, gated=True))
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "token").write_text(hub.token + "\n")  # as huggingface-cli login writes it
    out = subprocess.run([EMBER, "pull", "test/gated:gated-q8_0.gguf", "--dir", str(tmp_path / "m")],
                         env=hub_env(hub, HF_HOME=str(tmp_path / "hf")), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and (tmp_path / "m" / "gated-q8_0.gguf").read_bytes() == TINY_Q8, out.stderr
    out = subprocess.run([EMBER, "pull", "test/gated:gated-q8_0.gguf", "--dir", str(tmp_path / "n")],
                         env=hub_env(hub, HF_TOKEN="hf_someone_else"), capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "the token from HF_TOKEN has no access to test/gated" in out.stderr, out.stderr


def test_a_full_disk_says_so_with_sizes(hub, tmp_path):
    hub.add("test/disk", Repo({"huge-q8_0.gguf": TINY_Q8, "full-q8_0.gguf": TINY_Q8}, faults={"huge-q8_0.gguf": "huge"}))
    out = subprocess.run([EMBER, "pull", "test/disk:huge-q8_0.gguf", "--dir", str(tmp_path)], env=hub_env(hub),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "disk full: huge-q8_0.gguf needs 953674316 MiB more" in out.stderr, out.stderr
    (tmp_path / "full-q8_0.gguf.part").symlink_to("/dev/full")  # every write fails with ENOSPC
    out = subprocess.run([EMBER, "pull", "test/disk:full-q8_0.gguf", "--dir", str(tmp_path)], env=hub_env(hub),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "disk full: writing" in out.stderr, out.stderr
    assert re.search(r"MiB free\); full-q8_0.gguf needs 4 MiB in all", out.stderr), out.stderr
    assert not (tmp_path / "full-q8_0.gguf").exists()


def test_root_lists_running_downloads(server, hub):
    hub.add("test/root", Repo({"root-q8_0.gguf": TINY_Q8}, faults={"root-q8_0.gguf": "slow"}))
    t, lines = in_background(server, model="test/root", filename="root-q8_0.gguf")
    wait_for_download(server, "root-q8_0.gguf")
    d = next(d for d in downloads(server) if d["id"] == "root-q8_0.gguf")
    assert d["model"] == "test/root" and d["status"] == "downloading" and d["total"] == len(TINY_Q8), d
    assert d["clients"] == 1 and 0 < d["percent"] <= 100
    t.join()
    assert lines[-1]["status"] == "complete" and not downloads(server)


def test_a_file_already_here_is_used_when_the_hub_cannot_be_reached(tmp_path):
    """`ember pull ORG/REPO:FILE` as a pod's init step: once the file is on the volume, a hub
    that cannot be reached does not stop the pod (the file is used, unchecked, and said so);
    without the file, or by quantisation only (the file cannot be chosen), it is an error."""
    env = dict(os.environ, HF_ENDPOINT="http://127.0.0.1:9", HF_HOME="/nonexistent", HF_TOKEN="")
    (tmp_path / "one-q8_0.gguf").write_bytes(TINY_Q8)
    ok = cli("test/one:one-q8_0.gguf", "--dir", str(tmp_path), env=env)
    err = ok.communicate(timeout=120)[1]
    assert ok.returncode == 0, err
    assert "could not be reached" in err and "without checking it" in err, err
    missing = cli("test/one:other-q8_0.gguf", "--dir", str(tmp_path), env=env)
    err = missing.communicate(timeout=120)[1]
    assert missing.returncode != 0 and "other-q8_0.gguf" not in os.listdir(tmp_path), err
    by_quant = cli("test/one:Q8_0", "--dir", str(tmp_path), env=env)
    assert by_quant.wait(timeout=120) != 0
    (tmp_path / "broken-q8_0.gguf").write_bytes(TINY_Q8[:1000])  # cut short: never used
    broken = cli("test/one:broken-q8_0.gguf", "--dir", str(tmp_path), env=env)
    assert broken.wait(timeout=120) != 0
