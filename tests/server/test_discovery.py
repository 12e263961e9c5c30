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
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from ember_server import EMBER, SMOLLM2_FILE, EmberServer, wait_until  # noqa: E402

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
    data = (SYNTHETIC / "tiny-llama-f16.gguf").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    (ollama / "blobs").mkdir(parents=True)
    (ollama / "blobs" / f"sha256-{digest}").write_bytes(data)
    manifest = ollama / "manifests" / "registry.ollama.ai" / "library" / "tinyllama" / "latest"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": [
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "1" * 64, "size": 10},
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}", "size": len(data)}]}))
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
