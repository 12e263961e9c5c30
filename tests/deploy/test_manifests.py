"""deploy/: the Kubernetes manifests render with `kubectl kustomize` (every overlay) and every
rendered object validates against the Kubernetes schemas (kubernetes-validate, strict); the KServe
and SAP AI Core objects carry the fields those platforms require, with their containers validated
as Kubernetes containers; what the manifests name (probe paths, the HPA's metric, ports,
EMBER_* variables) is checked against a running `ember serve` and the sources."""
import copy
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "server"))
from ember_server import EMBER, SMOLLM2_FILE, EmberServer  # noqa: E402

ROOT = pathlib.Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
# The oldest Kubernetes these manifests are for, and the newest schemas kubernetes-validate has.
VERSIONS = ["1.27", kubernetes_validate.latest_version()]
DRAIN_TIMEOUT_DEFAULT = 25


def render(path):
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing: scripts/install-deps.sh installs it (kubernetes-client)"
    out = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def validate(obj):
    for v in VERSIONS:
        kubernetes_validate.validate(obj, v, strict=True)


def by_kind(docs):
    out = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def as_pod(container, init=()):
    """A Pod around a container, so the Kubernetes schemas check the container's fields."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"},
            "spec": {"containers": [container], **({"initContainers": list(init)} if init else {})}}


OVERLAYS = {"base": K8S / "base", "single": K8S / "overlays" / "single", "three": K8S / "overlays" / "three"}


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_overlay_renders_and_validates(name):
    docs = render(OVERLAYS[name])
    kinds = by_kind(docs)
    for d in docs:
        validate(d)
    assert {"Deployment", "Service", "PersistentVolumeClaim", "NetworkPolicy"} <= set(kinds), kinds.keys()
    deployment = kinds["Deployment"][0]
    spec = deployment["spec"]["template"]["spec"]
    c = spec["containers"][0]
    # Probes: liveness /health, readiness /ready (503 while draining), a startup probe.
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    # The grace period covers the preStop pause and the drain.
    env = env_of(c)
    drain = int(env["EMBER_DRAIN_TIMEOUT"]["value"]) if "EMBER_DRAIN_TIMEOUT" in env else DRAIN_TIMEOUT_DEFAULT
    pause = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
    assert spec["terminationGracePeriodSeconds"] > pause + drain
    # The API key from a Secret; the bind address and models volume.
    assert env["EMBER_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "ember-api-key"
    assert c["args"][:3] == ["serve", "--bind", "0.0.0.0:8080"] and "/models" in c["args"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts["models"] == "/models"
    claim = {v["name"]: v for v in spec["volumes"]}["models"]["persistentVolumeClaim"]["claimName"]
    assert claim == kinds["PersistentVolumeClaim"][0]["metadata"]["name"]
    # Prometheus scraping by annotation carries no key: /metrics must be public then.
    if deployment["spec"]["template"]["metadata"].get("annotations", {}).get("prometheus.io/scrape") == "true":
        assert env["EMBER_PUBLIC_METRICS"]["value"] == "1"
    # Resources: memory requested and limited alike (weights + KV cache + 64 MiB, see the comment).
    assert c["resources"]["requests"]["memory"] == c["resources"]["limits"]["memory"]
    # Selectors name ember's pods (an empty one would select every pod of the namespace).
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in [deployment["spec"]["selector"]["matchLabels"], kinds["Service"][0]["spec"]["selector"],
                     kinds["NetworkPolicy"][0]["spec"]["podSelector"]["matchLabels"]] + \
                    [p["spec"]["selector"]["matchLabels"] for p in kinds.get("PodDisruptionBudget", [])]:
        assert selector and all(labels.get(k) == v for k, v in selector.items()), selector
    assert kinds["Service"][0]["spec"]["ports"][0]["targetPort"] in ("http", 8080)
    if name == "single":
        assert deployment["spec"]["replicas"] == 1 and "HorizontalPodAutoscaler" not in kinds
        assert kinds["PersistentVolumeClaim"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
    if name in ("three", "base"):
        assert "replicas" not in deployment["spec"]  # the autoscaler's; apply must not reset it
    if name == "three":
        assert kinds["PersistentVolumeClaim"][0]["spec"]["accessModes"] == ["ReadWriteMany"]
        assert kinds["HorizontalPodAutoscaler"][0]["spec"]["minReplicas"] == 3
        assert kinds["PodDisruptionBudget"][0]["spec"]["minAvailable"] == 2
    if name != "base":  # the overlays pull a model first
        init = spec["initContainers"][0]
        assert init["args"][0] == "pull" and "--dir" in init["args"] and "/models" in init["args"]
        assert init["image"] == c["image"]


def test_strict_validation_catches_a_misspelt_field():
    deployment = by_kind(render(OVERLAYS["base"]))["Deployment"][0]
    broken = copy.deepcopy(deployment)
    c = broken["spec"]["template"]["spec"]["containers"][0]
    c["livenesProbe"] = c.pop("livenessProbe")
    with pytest.raises(Exception):
        validate(broken)
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "three"
    with pytest.raises(Exception):
        validate(wrong_type)


def hpa_metric():
    hpa = by_kind(render(OVERLAYS["three"]))["HorizontalPodAutoscaler"][0]
    return hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]


def test_the_autoscaler_metric_is_what_the_adapter_serves():
    metric = hpa_metric()
    rules = yaml.safe_load((K8S / "prometheus-adapter-rules.yaml").read_text())["rules"]["custom"]
    assert any(r["name"]["as"] == metric and metric in r["seriesQuery"] for r in rules)


def kserve_docs():
    return {d["kind"]: d for f in sorted((DEPLOY / "kserve").glob("*.yaml"))
            for d in yaml.safe_load_all(f.read_text()) if d}


def test_kserve_runtime_and_inference_service():
    docs = kserve_docs()
    runtime, isvc = docs["ServingRuntime"], docs["InferenceService"]
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    formats = {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert "gguf" in formats
    for f in runtime["spec"]["supportedModelFormats"]:
        assert not f.get("autoSelect") or f.get("priority", 0) > 0  # KServe: priority > 0 to auto-select
    c = runtime["spec"]["containers"][0]
    assert c["name"] == "kserve-container"  # where KServe mounts the model (/mnt/models)
    assert "/mnt/models" in c["args"] and "0.0.0.0:8080" in c["args"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    validate(as_pod(c))
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"] and model["modelFormat"]["name"] in formats
    assert re.match(r"^(pvc|s3|gs|https?|hf)://", model["storageUri"])
    assert isvc["spec"]["predictor"]["terminationGracePeriodSeconds"] > DRAIN_TIMEOUT_DEFAULT


def sap_template():
    return yaml.safe_load((DEPLOY / "sap-ai-core" / "serving-template.yaml").read_text())


def fill(text, params):
    """AI Core's {{inputs.parameters.NAME}} placeholders, filled with the parameters' defaults."""
    def one(m):
        assert m.group(1) in params, f"unknown parameter {m.group(1)}"
        return params[m.group(1)]
    return re.sub(r"\{\{\s*inputs\.parameters\.([A-Za-z0-9_]+)\s*\}\}", one, text)


def test_sap_ai_core_serving_template():
    t = sap_template()
    assert t["apiVersion"] == "ai.sap.com/v1alpha1" and t["kind"] == "ServingTemplate"
    assert re.fullmatch(r"[a-z0-9-]{1,50}", t["metadata"]["name"])  # the executable's id
    for key in ["scenarios.ai.sap.com/name", "executables.ai.sap.com/name"]:
        assert t["metadata"]["annotations"][key]
    for key in ["scenarios.ai.sap.com/id", "ai.sap.com/version"]:
        assert t["metadata"]["labels"][key]
    params = {}
    for p in t["spec"]["inputs"]["parameters"]:
        assert p["type"] == "string"  # the only type AI Core has
        params[p["name"]] = p.get("default", "")
    tmpl = t["spec"]["template"]
    assert tmpl["apiVersion"] == "serving.kserve.io/v1beta1"
    # metadata and spec are strings that AI Core fills in, then reads as YAML.
    for part in [tmpl["metadata"]["annotations"], tmpl["metadata"]["labels"], tmpl["spec"]]:
        assert isinstance(part, str)
    labels = yaml.safe_load(fill(tmpl["metadata"]["labels"], params))
    assert labels["ai.sap.com/resourcePlan"]
    annotations = yaml.safe_load(fill(tmpl["metadata"]["annotations"], params))
    assert annotations["autoscaling.knative.dev/metric"] in ("concurrency", "rps")
    predictor = yaml.safe_load(fill(tmpl["spec"], params))["predictor"]
    assert int(predictor["maxReplicas"]) >= predictor["minReplicas"] >= 1
    assert predictor["terminationGracePeriodSeconds"] > DRAIN_TIMEOUT_DEFAULT
    c = predictor["containers"][0]
    assert c["name"] == "kserve-container"
    assert c["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    # The pull runs before ember listens: a startup probe gives it time, liveness waits for it.
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 600
    script = " ".join(c["args"])
    assert "ember pull" in script and "exec ember serve --bind 0.0.0.0:8080" in script
    assert env_of(c)["EMBER_PULL_MODEL"]["value"] == params["model"]
    validate(as_pod(c))


def test_what_the_manifests_name_exists_in_a_running_server(tmp_path):
    """A server with the Deployment's environment: the probe paths answer 200 without the key
    (kubelet probes carry none), /metrics too (Prometheus scrapes by annotation) and carries the
    autoscaler's metric, the API itself needs the key, and the sizing rule (`ember inspect
    --memory`) bounds what the server really holds."""
    metric = hpa_metric()
    deployment = by_kind(render(OVERLAYS["three"]))["Deployment"][0]
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
           if "value" in e}
    env["EMBER_API_KEY"] = "secret"
    with EmberServer(tmp_path, "--ctx", "1024", "--parallel", "2", models=(SMOLLM2_FILE,), env=env) as s:
        for path in ["/health", "/ready", "/metrics"]:
            assert urllib.request.urlopen(s.url + path).status == 200, path
        try:
            urllib.request.urlopen(s.url + "/v1/models")
            assert False, "the API answered without the key"
        except urllib.error.HTTPError as e:
            assert e.code == 401
        auth = {"Authorization": "Bearer secret", "Content-Type": "application/json"}
        body = json.dumps({"prompt": "Once upon a time", "max_tokens": 64}).encode()
        urllib.request.urlopen(urllib.request.Request(s.url + "/v1/completions", body, auth)).read()
        text = urllib.request.urlopen(s.url + "/metrics").read().decode()
        assert re.search(rf"^{metric} \d+", text, re.M), text
        resident = float(re.search(r"^ember_resident_memory_bytes (\S+)", text, re.M).group(1))
        sized = json.loads(subprocess.run([EMBER, "inspect", "--memory", "--json", "--ctx", "1024",
                                           "--parallel", "2", str(SMOLLM2_FILE)],
                                          capture_output=True, text=True, check=True).stdout)
        assert sized["weights_bytes"] < resident < sized["total_bytes"], (resident, sized)


def test_every_documented_variable_is_one_ember_reads():
    """The variables the Containerfile documents and the manifests set are read by ember."""
    sources = "".join(p.read_text() for p in (ROOT / "server").rglob("*.cpp")) + \
        "".join(p.read_text() for p in (ROOT / "kernels").rglob("*.cpp"))
    named = set(re.findall(r"^#\s+(EMBER_[A-Z_]+)\b", (DEPLOY / "Containerfile").read_text(), re.M))
    for f in [*K8S.rglob("*.yaml"), *(DEPLOY / "kserve").glob("*.yaml"), *(DEPLOY / "sap-ai-core").glob("*.yaml")]:
        named |= set(re.findall(r"name:\s*(EMBER_[A-Z_]+)\b", f.read_text()))
    named -= {"EMBER_PULL_MODEL"}  # the SAP template's own, read by its shell line
    assert len(named) >= 5, named
    missing = [v for v in sorted(named) if f'"{v}"' not in sources]
    assert not missing, f"documented but never read: {missing}"


def test_containerfile_stages_user_and_command():
    text = (DEPLOY / "Containerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M)
    assert len(froms) == 2 and froms[0][1] == "build", froms
    assert re.search(r"^USER\s+10001", text, re.M)
    assert "COPY --from=build" in text
    cmd = json.loads(re.search(r"^CMD\s+(\[.*\])", text, re.M).group(1))
    assert cmd == ["serve", "--bind", "0.0.0.0:8080", "--model-dirs", "/models"]
    assert re.search(r"^EXPOSE\s+8080", text, re.M)
