"""Discovery without a server (`ember list`, `ember discover`) and through one: model
directories, EMBER_BASE_GGUF, a fake Hugging Face cache and a fake Ollama store built from the
shared synthetic GGUF files; ids, aliases, ambiguous aliases, non-GGUF files, split models."""
import hashlib
import shutil
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from ember_server import EMBER, SMOLLM2_FILE, EmberServer, ollama_model, wait_until  # noqa: E402

SYNTHETIC = pathlib.Path(os.environ.get("EMBER_TESTDATA", pathlib.Path(__file__).parents[3] / "shared" / "testdata")) / "synthetic"


def build_tree(root):
    models = root / "work" / "models"
    models.mkdir(parents=True)
    (models / "tiny-llama-q8_0.gguf").symlink_to(SYNTHETIC / "tiny-llama-q8_0.gguf")
    (models / "tiny-llama-q4_0.gguf").symlink_to(SYNTHETIC / "tiny-llama-q4_0.gguf")  # alias now ambiguous
    (models / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00garbage")
    (models / "notes.txt").write_text("not a model")
    extra = root / "extra"
    (extra / "repo").mkdir(parents=True)
    (extra / "repo" / "Tiny_Gemma3-Q8_0.gguf").symlink_to(SYNTHETIC / "tiny-gemma3-q8_0.gguf")
    # Hugging Face cache: snapshots hold symlinks into blobs/.
    hf = root / "hf-home" / "hub" / "models--org--tiny-mixtral"
    (hf / "blobs").mkdir(parents=True)
    data = (SYNTHETIC / "tiny-mixtral-q8_0.gguf").read_bytes()
    blob = hf / "blobs" / hashlib.sha256(data).hexdigest()
    blob.write_bytes(data)
    (hf / "snapshots" / "abc123").mkdir(parents=True)
    (hf / "snapshots" / "abc123" / "tiny-mixtral-q8_0.gguf").symlink_to(blob)
    # Ollama: a manifest naming the model layer, stored as blobs/sha256-HEX.
    ollama = root / "ollama"
    ollama_model(ollama, "tinyllama", "latest", SYNTHETIC / "tiny-llama-f16.gguf", other_layers=[
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "1" * 64, "size": 10}])
    env = dict(os.environ, EMBER_MODEL_DIRS=str(extra), HF_HOME=str(root / "hf-home"), HF_HUB_CACHE="",
               OLLAMA_MODELS=str(ollama), EMBER_BASE_GGUF=str(SYNTHETIC / "tiny-gemma3-f16.gguf"))
    return root / "work", env


EXPECTED = {"tiny-llama-q8-0", "tiny-llama-q4-0", "tiny-gemma3-q8-0", "tiny-mixtral-q8-0", "tinyllama:latest",
            "tiny-gemma3-f16"}


def test_list_finds_every_source(tmp_path):
    work, env = build_tree(tmp_path)
    out = subprocess.run([EMBER, "list", "--short"], cwd=work, env=env, capture_output=True, text=True)
    assert out.returncode == 0 and set(out.stdout.split()) == EXPECTED, (out.stdout, out.stderr)
    assert "broken.gguf" in out.stderr  # a file that does not parse is reported and skipped
    table = subprocess.run([EMBER, "list"], cwd=work, env=env, capture_output=True, text=True).stdout
    assert "hf-cache" in table and "ollama" in table and "alias: tiny-gemma3" not in table.split("tiny-gemma3-q8-0")[0]
    out = subprocess.run([EMBER, "discover"], cwd=work, env=env, capture_output=True, text=True)
    assert "found 6 model(s)" in out.stdout


def test_server_ids_aliases_and_rescans(tmp_path):
    work, env = build_tree(tmp_path)
    with EmberServer(work, models=(), env=env) as s:
        data = json.loads(urllib.request.urlopen(s.url + "/v1/models").read())["data"]
        assert {m["id"] for m in data} == EXPECTED
        # tiny-llama is claimed by two files: no alias; tiny-mixtral is unambiguous.
        get = lambda name: urllib.request.urlopen(s.url + "/v1/models/" + name)  # noqa: E731
        assert json.loads(get("tiny-mixtral").read())["id"] == "tiny-mixtral-q8-0"
        assert json.loads(get("TinyLlama:latest").read())["id"] == "tinyllama:latest"
        try:
            get("tiny-llama")
            assert False, "an ambiguous alias must not resolve"
        except urllib.error.HTTPError as e:
            assert e.code == 404
        # A completion through an Ollama-store model and a Hugging Face cache model.
        for model in ("tinyllama:latest", "tiny-mixtral-q8-0"):
            body = json.dumps({"model": model, "prompt": "hello", "max_tokens": 3, "temperature": 0}).encode()
            r = json.loads(urllib.request.urlopen(urllib.request.Request(s.url + "/v1/completions", body)).read())
            assert r["usage"]["completion_tokens"] >= 1
        # Rescan on request after a file is removed.
        (work / "models" / "tiny-llama-q4_0.gguf").unlink()
        assert wait_until(lambda: "tiny-llama-q4-0" not in
                          {m["id"] for m in json.loads(urllib.request.urlopen(s.url + "/v1/models").read())["data"]})
        r = json.loads(urllib.request.urlopen(urllib.request.Request(s.url + "/api/models/discover", b"", method="POST")).read())
        assert r["models_found"] == 5
        assert json.loads(get("tiny-llama").read())["id"] == "tiny-llama-q8-0"  # the alias is unambiguous now


def completion(url, model, tokens, stream=False):
    body = json.dumps({"model": model, "prompt": "hello", "max_tokens": tokens, "temperature": 0.7,
                       "stream": stream}).encode()
    return urllib.request.urlopen(urllib.request.Request(url + "/v1/completions", body), timeout=120).read()


def loaded(url):
    return json.loads(urllib.request.urlopen(url + "/health").read())["models"]["loaded"]


def test_lazy_loading_lru_and_models_in_use(tmp_path):
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    for name in ("tiny-llama-q8_0.gguf", "tiny-llama-q4_0.gguf", "tiny-gemma3-q8_0.gguf"):
        (work / "models" / name).write_bytes((SYNTHETIC / name).read_bytes())
    # q8_0 3.9 MB + q4_0 2.1 MB fit 7 MB; the gemma file (6.2 MB) fits only alone.
    with EmberServer(work, "--max-loaded-models", "2", "--memory-budget-mb", "7", models=()) as s:
        assert loaded(s.url) == []  # nothing loads before a request needs it
        completion(s.url, "tiny-llama-q8-0", 2)
        assert loaded(s.url) == ["tiny-llama-q8-0"]
        completion(s.url, "tiny-llama-q4-0", 2)
        assert sorted(loaded(s.url)) == ["tiny-llama-q4-0", "tiny-llama-q8-0"]
        completion(s.url, "tiny-gemma3-q8-0", 2)  # a third: least recently used go first
        assert loaded(s.url) == ["tiny-gemma3-q8-0"]
        assert s.log().index("unloading tiny-llama-q8-0") < s.log().index("unloading tiny-llama-q4-0")



def test_model_deleted_while_answering_finishes_the_request(tmp_path):
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    model = work / "models" / "smol-copy-q4_1.gguf"
    shutil.copy(SMOLLM2_FILE, model)
    with EmberServer(work, models=()) as s:
        import threading
        result = {}
        t = threading.Thread(target=lambda: result.update(body=completion(s.url, "smol-copy-q4-1", 300, True)))
        t.start()
        active = lambda: json.loads(urllib.request.urlopen(s.url + "/health").read())["slots"]["active"] == 1  # noqa: E731
        assert wait_until(active)
        model.unlink()
        t.join()
        assert result["body"].endswith(b"data: [DONE]\n\n")
        assert b'"error"' not in result["body"] and b'"finish_reason":"' in result["body"]
        assert wait_until(lambda: "smol-copy-q4-1" not in
                          {m["id"] for m in json.loads(urllib.request.urlopen(s.url + "/v1/models").read())["data"]})


def test_shimmy_variables(tmp_path):
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    shim = tmp_path / "shimmy"
    shim.mkdir()
    (shim / "tiny-llama-q6_k.gguf").symlink_to(SYNTHETIC / "tiny-llama-q6_k.gguf")
    env = dict(os.environ, SHIMMY_MODEL_PATHS=str(shim), SHIMMY_BASE_GGUF=str(SYNTHETIC / "tiny-llama-q5_1.gguf"),
               HF_HOME=str(tmp_path / "none"), OLLAMA_MODELS=str(tmp_path / "none"))
    out = subprocess.run([EMBER, "list", "--short"], cwd=work, env=env, capture_output=True, text=True)
    assert set(out.stdout.split()) == {"tiny-llama-q6-k", "tiny-llama-q5-1"}, out


# ---- the store never lies (issue: model store, discovery items) ----

def write_model(path, arch="llama", split_parts=0):
    """A small GGUF (no weights worth running) that discovery accepts; split into parts when asked."""
    import gguf
    import numpy as np
    w = gguf.GGUFWriter(str(path), arch, split_max_tensors=1 if split_parts else 0)
    for i in range(max(1, split_parts)):
        w.add_tensor(f"t{i}", np.full(32, i, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def list_models(work, env, as_user=None, binary=EMBER):
    cmd = [str(binary), "list", "--short"]
    if as_user is not None:  # root reads everything: an unreadable directory needs another user
        cmd = ["setpriv", f"--reuid={as_user}", f"--regid={as_user}", "--clear-groups"] + cmd
    out = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split()), out.stderr


def hf_repo(hub, name, snapshots, main=None):
    """models--org--NAME with {revision: {file: source path}} snapshots linking into blobs/."""
    repo = hub / f"models--org--{name}"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for rev, files in snapshots.items():
        for fname, src in files.items():
            data = pathlib.Path(src).read_bytes()
            blob = repo / "blobs" / hashlib.sha256(data + rev.encode()).hexdigest()
            blob.write_bytes(data)
            (repo / "snapshots" / rev).mkdir(parents=True, exist_ok=True)
            (repo / "snapshots" / rev / fname).symlink_to(blob)
    if main:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(main)
    return repo


def base_env(root, **extra):
    env = dict(os.environ, HF_HOME=str(root / "hf-home"), HF_HUB_CACHE="", OLLAMA_MODELS=str(root / "ollama"),
               EMBER_MODEL_DIRS="", EMBER_BASE_GGUF="")
    env.update(extra)
    return env


def test_hf_cache_follows_refs_main_and_ignores_incomplete(tmp_path):
    hub = tmp_path / "hf-home" / "hub"
    hf_repo(hub, "tiny", {"old111": {"tiny-q8_0.gguf": SYNTHETIC / "tiny-llama-q8_0.gguf"},
                          "new222": {"tiny-q8_0.gguf": SYNTHETIC / "tiny-llama-q4_0.gguf"}}, main="new222")
    # An interrupted download: the snapshot entry points at a .incomplete blob.
    repo = hf_repo(hub, "partial", {})
    (repo / "blobs" / "abc.incomplete").write_bytes(b"GGUF")
    (repo / "snapshots" / "r1").mkdir(parents=True)
    (repo / "snapshots" / "r1" / "partial.gguf").symlink_to(repo / "blobs" / "abc.incomplete")
    (repo / ".no_exist" / "r1").mkdir(parents=True)
    (repo / ".no_exist" / "r1" / "other.gguf").write_bytes(b"")
    # Two snapshots and no refs/main: which is current is unknown, so it is reported, not guessed.
    hf_repo(hub, "unsure", {"a1": {"unsure-q8_0.gguf": SYNTHETIC / "tiny-llama-q8_0.gguf"},
                            "b2": {"unsure-q8_0.gguf": SYNTHETIC / "tiny-llama-q8_0.gguf"}})
    (tmp_path / "work").mkdir()
    env = base_env(tmp_path)
    ids, err = list_models(tmp_path / "work", env)
    assert ids == {"tiny-q8-0"}, (ids, err)
    table = subprocess.run([EMBER, "list"], cwd=tmp_path / "work", env=env, capture_output=True, text=True).stdout
    assert "new222" in table and "old111" not in table
    assert "models--org--unsure" in err and "refs/main" in err


def test_an_unreadable_directory_hides_nothing_else(tmp_path):
    root = pathlib.Path(tempfile.mkdtemp(dir="/tmp"))  # readable by an unprivileged user
    try:
        os.chmod(root, 0o755)
        hub = root / "hf-home" / "hub"
        hf_repo(hub, "aaa", {"r1": {"aaa-q8_0.gguf": SYNTHETIC / "tiny-llama-q8_0.gguf"}}, main="r1")
        hf_repo(hub, "zzz", {"r1": {"zzz-q4_0.gguf": SYNTHETIC / "tiny-llama-q4_0.gguf"}}, main="r1")
        bad = hf_repo(hub, "mmm", {"r1": {"mmm-q8_0.gguf": SYNTHETIC / "tiny-llama-q8_0.gguf"}}, main="r1")
        ollama = root / "ollama"
        ollama_model(ollama, "good", "latest", SYNTHETIC / "tiny-llama-q8_0.gguf")
        ollama_model(ollama, "hidden", "latest", SYNTHETIC / "tiny-llama-q4_0.gguf")
        (root / "work" / "models" / "sub").mkdir(parents=True)
        shutil.copy(SYNTHETIC / "tiny-llama-q6_k.gguf", root / "work" / "models" / "tiny-llama-q6_k.gguf")
        for p in root.rglob("*"):
            if not p.is_symlink():
                os.chmod(p, 0o755 if p.is_dir() else 0o644)
        os.chmod(bad / "snapshots" / "r1", 0)
        os.chmod(ollama / "manifests" / "registry.ollama.ai" / "library" / "hidden", 0)
        os.chmod(root / "work" / "models" / "sub", 0)
        env = base_env(root)
        # The other user runs a copy of the binary inside the tree, wherever the checkout is.
        binary = root / "ember"
        shutil.copy(EMBER, binary)
        os.chmod(binary, 0o755)
        ids, err = list_models(root / "work", env, as_user=65534 if os.geteuid() == 0 else None,
                               binary=binary)
        assert ids == {"aaa-q8-0", "zzz-q4-0", "good:latest", "tiny-llama-q6-k"}, (ids, err)
        assert "snapshots/r1" in err and "hidden" in err and "models/sub" in err  # said, not silent
    finally:
        for p in root.rglob("*"):
            if p.is_dir() and not p.is_symlink():
                os.chmod(p, 0o755)
        shutil.rmtree(root)


def test_directory_symlinks_are_followed_loops_cut_dangling_ignored(tmp_path):
    work = tmp_path / "work"
    (work / "models" / "org").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere" / "repo"
    elsewhere.mkdir(parents=True)
    (elsewhere / "tiny-llama-q8_0.gguf").symlink_to(SYNTHETIC / "tiny-llama-q8_0.gguf")
    (work / "models" / "org" / "repo").symlink_to(elsewhere, target_is_directory=True)
    (work / "models" / "org" / "loop").symlink_to(work / "models", target_is_directory=True)
    (work / "models" / "gone").symlink_to(tmp_path / "nowhere", target_is_directory=True)
    (work / "models" / "gone.gguf").symlink_to(tmp_path / "nowhere.gguf")
    ids, err = list_models(work, base_env(tmp_path))
    assert ids == {"tiny-llama-q8-0"}, (ids, err)


def test_ollama_store_tags_hosts_old_blob_names_and_missing_blobs(tmp_path):
    ollama = tmp_path / "ollama"
    ollama_model(ollama, "tiny", "latest", SYNTHETIC / "tiny-llama-q8_0.gguf")
    ollama_model(ollama, "tiny", "q8", SYNTHETIC / "tiny-llama-q8_0.gguf")  # the same blob, another tag
    ollama_model(ollama, "tiny-gguf", "Q4_0", SYNTHETIC / "tiny-llama-q4_0.gguf", host="hf.co", ns="Org")
    ollama_model(ollama, "old", "latest", SYNTHETIC / "tiny-llama-q6_k.gguf", blob_style="sha256:")
    digest = ollama_model(ollama, "lost", "latest", SYNTHETIC / "tiny-llama-q5_0.gguf")
    (ollama / "blobs" / f"sha256-{digest}").unlink()
    (tmp_path / "work").mkdir()
    env = base_env(tmp_path)
    ids, err = list_models(tmp_path / "work", env)
    assert ids == {"tiny:latest", "tiny:q8", "hf.co/org/tiny-gguf:q4_0", "old:latest"}, (ids, err)
    assert "lost:latest" in err and "missing" in err
    with EmberServer(tmp_path / "work", models=(), env=env) as s:
        for model in ("tiny:latest", "tiny:q8", "hf.co/org/tiny-gguf:q4_0", "old"):
            body = json.dumps({"model": model, "prompt": "hello", "max_tokens": 2, "temperature": 0}).encode()
            r = json.loads(urllib.request.urlopen(urllib.request.Request(s.url + "/v1/completions", body)).read())
            assert r["usage"]["completion_tokens"] >= 1, model


def test_projectors_are_not_models_and_split_sets_missing_a_part_are_reported(tmp_path):
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    shutil.copy(SYNTHETIC / "tiny-llama-q8_0.gguf", work / "models" / "tiny-llama-q8_0.gguf")
    write_model(work / "models" / "mmproj-tiny-f16.gguf", arch="clip")
    write_model(work / "models" / "headless.gguf", split_parts=3)
    (work / "models" / "headless-00001-of-00003.gguf").unlink()
    write_model(work / "models" / "tailless.gguf", split_parts=3)
    (work / "models" / "tailless-00003-of-00003.gguf").unlink()
    env = base_env(tmp_path)
    ids, err = list_models(work, env)
    assert ids == {"tiny-llama-q8-0"}, (ids, err)
    assert "headless-00001-of-00003.gguf" in err and "tailless" in err
    with EmberServer(work, models=(), env=env) as s:
        body = json.dumps({"model": "mmproj-tiny-f16", "messages": [{"role": "user", "content": "hi"}]}).encode()
        try:
            urllib.request.urlopen(urllib.request.Request(s.url + "/v1/chat/completions", body))
            assert False, "a projector must not be served"
        except urllib.error.HTTPError as e:
            assert e.code == 400 and "projector" in json.loads(e.read())["error"]["message"]
        health = json.loads(urllib.request.urlopen(s.url + "/health").read())
        assert any("headless" in x for x in health["models"]["skipped"]), health


def test_deleting_a_split_model_removes_every_part(tmp_path):
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    write_model(work / "models" / "splitty.gguf", split_parts=3)
    with EmberServer(work, models=(), env=base_env(tmp_path)) as s:
        ids = lambda: {m["id"] for m in json.loads(urllib.request.urlopen(s.url + "/v1/models").read())["data"]}  # noqa: E731
        assert ids() == {"splitty"}
        r = urllib.request.urlopen(urllib.request.Request(s.url + "/api/models/splitty", method="DELETE"))
        assert r.status == 200
        assert list((work / "models").iterdir()) == []
        assert ids() == set()


def test_watching_finds_what_is_scanned_and_sources_created_later(tmp_path):
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    hub = tmp_path / "hf-home" / "hub"
    repo = hf_repo(hub, "grow", {"r1": {"grow-q8_0.gguf": SYNTHETIC / "tiny-llama-q8_0.gguf"}}, main="r1")
    env = base_env(tmp_path)
    with EmberServer(work, models=(), env=env) as s:
        ids = lambda: {m["id"] for m in json.loads(urllib.request.urlopen(s.url + "/v1/models").read())["data"]}  # noqa: E731
        assert wait_until(lambda: ids() == {"grow-q8-0"}, timeout=5), ids()
        # models/ORG/REPO/FILE, the directories made after start
        (work / "models" / "org" / "repo").mkdir(parents=True)
        shutil.copy(SYNTHETIC / "tiny-llama-q4_0.gguf", work / "models" / "org" / "repo" / "deep-q4_0.gguf")
        assert wait_until(lambda: "deep-q4-0" in ids(), timeout=5), ids()
        # a new revision in an existing Hugging Face cache repository
        hf_repo(hub, "grow", {"r2": {"grow-q6_k.gguf": SYNTHETIC / "tiny-llama-q6_k.gguf"}})
        (repo / "refs" / "main").write_text("r2")
        assert wait_until(lambda: "grow-q6-k" in ids() and "grow-q8-0" not in ids(), timeout=5), ids()
        # Ollama's store, created after the server started
        ollama_model(tmp_path / "ollama", "late", "latest", SYNTHETIC / "tiny-llama-q8_0.gguf")
        assert wait_until(lambda: "late:latest" in ids(), timeout=5), ids()


def test_without_inotify_the_rescan_interval_finds_new_and_deleted_files(tmp_path):
    """--no-watch stands for a network volume (inotify sees nothing another host writes): the
    periodic rescan finds a copied model, and one deleted elsewhere answers 404 and is unloaded."""
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    with EmberServer(work, "--no-watch", "--rescan-interval", "1", models=()) as s:
        ids = lambda: {m["id"] for m in json.loads(urllib.request.urlopen(s.url + "/v1/models").read())["data"]}  # noqa: E731
        shutil.copy(SMOLLM2_FILE, work / "models" / "smol-copy-q4_1.gguf")
        assert wait_until(lambda: "smol-copy-q4-1" in ids(), timeout=5), ids()
        assert b"finish_reason" in completion(s.url, "smol-copy-q4-1", 4, False)
        ps = lambda: [m["name"] for m in json.loads(urllib.request.urlopen(s.url + "/api/ps").read())["models"]]  # noqa: E731
        assert ps() == ["smol-copy-q4-1"]
        (work / "models" / "smol-copy-q4_1.gguf").unlink()  # as another replica's DELETE would
        assert wait_until(lambda: "smol-copy-q4-1" not in ids(), timeout=5), ids()
        status = urllib.request.Request(s.url + "/v1/completions", data=json.dumps(
            {"model": "smol-copy-q4-1", "prompt": "x", "max_tokens": 2}).encode())
        try:
            urllib.request.urlopen(status)
            assert False, "a deleted model still answered"
        except urllib.error.HTTPError as e:
            assert e.code == 404
        assert wait_until(lambda: ps() == [], timeout=5), ps()
        assert wait_until(lambda: "unloading smol-copy-q4-1 (its file is gone or was replaced)" in s.log(), timeout=3), s.log()
        # A file replaced under the same name: the loaded copy goes, the next request loads the new.
        tiny = work / "models" / "tiny-copy-q8_0.gguf"
        shutil.copy(SYNTHETIC / "tiny-llama-q8_0.gguf", tiny)
        assert wait_until(lambda: "tiny-copy-q8-0" in ids(), timeout=5), ids()
        assert b"finish_reason" in completion(s.url, "tiny-copy-q8-0", 2, False)
        time.sleep(1.1)  # another modification time
        shutil.copy(SYNTHETIC / "tiny-llama-q4_0.gguf", tiny)
        assert wait_until(lambda: "unloading tiny-copy-q8-0 (its file is gone or was replaced)" in s.log(), timeout=5), s.log()
        assert b"finish_reason" in completion(s.url, "tiny-copy-q8-0", 2, False)
    assert "models directory changed" not in s.log()  # the watcher was off


def test_rescan_interval_zero_and_bad_values(tmp_path):
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    out = subprocess.run([EMBER, "serve", "--rescan-interval", "-1"], cwd=work, capture_output=True, text=True)
    assert out.returncode == 2 and "--rescan-interval must be a whole number" in out.stderr, out.stderr
    out = subprocess.run([EMBER, "serve", "--drain-timeout", "soon"], cwd=work, capture_output=True, text=True)
    assert out.returncode == 2 and "--drain-timeout" in out.stderr, out.stderr
    out = subprocess.run([EMBER, "serve", "--help"], cwd=work, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("usage: ember serve"), out
    for flag in ("--drain-timeout", "--rescan-interval", "--no-watch", "--public-metrics", "--speculative"):
        assert flag in out.stdout, flag
    with EmberServer(work, "--no-watch", "--rescan-interval", "0", models=()) as s:
        shutil.copy(SYNTHETIC / "tiny-llama-q8_0.gguf", work / "models" / "tiny-q8_0.gguf")
        time.sleep(1.5)
        models = json.loads(urllib.request.urlopen(s.url + "/v1/models").read())["data"]
        assert models == []  # no watcher, no rescans: only a discover request finds it
        urllib.request.urlopen(urllib.request.Request(s.url + "/api/models/discover", data=b"{}"))
        models = json.loads(urllib.request.urlopen(s.url + "/v1/models").read())["data"]
        assert [m["id"] for m in models] == ["tiny-q8-0"]
