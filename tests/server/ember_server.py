"""Starts the real `ember serve` binary on a free port for end-to-end tests; builds fake model
stores (Ollama's) for them."""
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

EMBER = os.path.abspath(os.environ.get("EMBER_BIN", "build/release/bin/ember"))
MODEL_CACHE = pathlib.Path(os.environ.get("EMBER_MODEL_CACHE", pathlib.Path.home() / ".cache/ember/models"))
SMOLLM2_FILE = MODEL_CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3_FILE = MODEL_CACHE / "gemma-3-270m-q4_k_m.gguf"
SMOLLM2 = "smollm2-135m-instruct.q4-1"
GEMMA3 = "gemma-3-270m-q4-k-m"


class EmberServer:
    """`with EmberServer(tmp_path, "--parallel", "4") as s:` → s.url, s.host, s.port, s.log()."""

    def __init__(self, workdir, *args, env=None, models=(SMOLLM2_FILE, GEMMA3_FILE)):
        self.workdir = pathlib.Path(workdir)
        self.args = list(args)
        # Discovery also looks at the Hugging Face cache and Ollama's store: keep the user's out.
        # A test's server drains for at most 5 s on SIGTERM (stop() waits 10 s); tests of the
        # drain itself pass --drain-timeout, which wins.
        self.env = dict(os.environ, HF_HOME=str(self.workdir / "hf-home"), HF_HUB_CACHE="",
                        OLLAMA_MODELS=str(self.workdir / "ollama"), EMBER_DRAIN_TIMEOUT="5")
        self.env.update(env or {})
        self.models = models
        self.stderr_lines = []

    def __enter__(self):
        models_dir = self.workdir / "models"
        models_dir.mkdir(parents=True, exist_ok=True)
        for m in self.models:
            assert m.exists(), f"{m} is missing: run scripts/fetch-models.sh (make test does)"
            link = models_dir / m.name
            if not link.exists():
                link.symlink_to(m)
        self.proc = subprocess.Popen([os.path.abspath(EMBER), "serve", "--bind", "127.0.0.1:0", *self.args],
                                     cwd=self.workdir, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.first_line = self.proc.stdout.readline()
        assert self.first_line.startswith("listening on "), (self.first_line, self.proc.stderr.read())
        self.host, port = self.first_line.split()[-1].rsplit(":", 1)
        self.port = int(port)
        self.url = f"http://{self.host}:{self.port}"
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _drain(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def log(self):
        return "".join(self.stderr_lines)

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=timeout)
        return self.proc.returncode

    def __exit__(self, *exc):
        try:
            code = self.stop()
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        assert code == 0, f"ember serve exited with {code}:\n{self.log()}"


def wait_until(predicate, timeout=10.0, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def ollama_model(root, name, tag, source, host="registry.ollama.ai", ns="library", blob_style="sha256-",
                 link=False, other_layers=()):
    """Puts `source` into a fake Ollama store at `root` as manifests/HOST/NS/NAME/TAG naming the blob
    (copied, or symlinked with `link`; `blob_style` "sha256:" for older stores), after
    `other_layers` (layer dicts of other media types). Returns the digest."""
    source = pathlib.Path(source)
    data = source.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    blob = root / "blobs" / f"{blob_style}{digest}"
    if not blob.exists():
        blob.symlink_to(source) if link else blob.write_bytes(data)
    manifest = root / "manifests" / host / ns / name / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": [*other_layers, {
        "mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}", "size": len(data)}]}))
    return digest


def post(server, path, body, timeout=120):
    """(status, parsed JSON body) of a POST made with urllib."""
    req = urllib.request.Request(server.url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
