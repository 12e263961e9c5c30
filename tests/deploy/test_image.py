"""The container image (deploy/Containerfile) builds and its binary runs. No registry for base
images is reachable here and containers cannot start (crun cannot set rlimits or cgroups on
these machines), so:
- the base is made by `debootstrap --variant=minbase bookworm` from the Debian mirror this machine
  uses (with -updates and -security, as Docker's debian:bookworm has), imported with
  `podman import` and tagged as debian:bookworm and debian:bookworm-slim; it is cached in
  ~/.cache/ember/deploy (EMBER_DEPLOY_CACHE) between runs;
- `podman build --isolation chroot` (RUN steps in a chroot, not a container) with the vfs storage
  driver builds the image, the build stage's compiler reusing `make build`'s objects through the
  ccache mounted at /ccache (scripts/ccache-launch);
- the image's filesystem, mounted with `podman image mount`, runs `ember --version`,
  `ember gpu-info` and `ember inspect --memory` under chroot as the image's non-root user.
Skipped with the reason where podman, debootstrap or root are missing."""
import json
import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).parents[2]
SYNTHETIC = pathlib.Path(os.environ.get("EMBER_TESTDATA", ROOT.parent / "shared" / "testdata")) / "synthetic"
CACHE = pathlib.Path(os.environ.get("EMBER_DEPLOY_CACHE", pathlib.Path.home() / ".cache" / "ember" / "deploy"))
CCACHE = pathlib.Path(os.environ.get("EMBER_CCACHE_DIR", pathlib.Path.home() / ".cache" / "ember" / "ccache"))
BASE = "localhost/ember-base:bookworm"
IMAGE = "localhost/ember:test"


def podman(*args, timeout=600, check=True):
    cmd = ["podman", "--root", str(CACHE / "storage"), "--runroot", str(CACHE / "run"),
           "--storage-driver", "vfs", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, f"{' '.join(cmd)}:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out


def mirrors():
    """The Debian and Debian security mirrors this machine's apt uses (deb822 or one-line form)."""
    text = ""
    for f in [pathlib.Path("/etc/apt/sources.list"), *pathlib.Path("/etc/apt/sources.list.d").glob("*")]:
        if f.is_file():
            text += f.read_text(errors="replace") + "\n"
    uris = re.findall(r"^(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text, re.M)
    main = next((u for u in uris if re.search(r"/debian/?$", u)), "http://deb.debian.org/debian")
    security = next((u for u in uris if re.search(r"/debian-security/?$", u)),
                    "http://deb.debian.org/debian-security")
    return main.rstrip("/"), security.rstrip("/")


def ensure_base():
    """The debootstrap base, made once and kept in the cache's image storage."""
    if podman("image", "exists", BASE, check=False).returncode == 0:
        return
    main, security = mirrors()
    rootfs = CACHE / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    out = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), main],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (rootfs / "etc/apt/sources.list").write_text(
        f"deb {main} bookworm main\ndeb {main} bookworm-updates main\n"
        f"deb {security} bookworm-security main\n")
    shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
    (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(["podman", "--root", str(CACHE / "storage"), "--runroot", str(CACHE / "run"),
                               "--storage-driver", "vfs", "import", "-", BASE],
                              stdin=tar.stdout, capture_output=True, text=True, timeout=600)
    tar.wait()
    assert imported.returncode == 0, imported.stderr
    shutil.rmtree(rootfs, ignore_errors=True)


@pytest.fixture(scope="module")
def image():
    missing = [t for t in ("podman", "debootstrap", "chroot") if not shutil.which(t)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: scripts/install-deps.sh installs podman and "
                    "debootstrap (Debian packages)")
    if os.geteuid() != 0:
        pytest.skip("building from a debootstrap base and running the image under chroot need root")
    CACHE.mkdir(parents=True, exist_ok=True)
    CCACHE.mkdir(parents=True, exist_ok=True)
    start = time.time()
    ensure_base()
    # FROM debian:bookworm / bookworm-slim resolve to the local base (no registry is reachable).
    podman("tag", BASE, "docker.io/library/debian:bookworm", "docker.io/library/debian:bookworm-slim")
    built = podman("build", "--isolation", "chroot", "--pull=never", "--layers=false",
                   "-v", f"{CCACHE}:/ccache", "-f", str(ROOT / "deploy" / "Containerfile"),
                   "-t", IMAGE, str(ROOT), timeout=900)
    podman("image", "prune", "-f")  # the previous build's image, now untagged
    print(f"image built in {time.time() - start:.0f} s")
    mount = podman("image", "mount", IMAGE).stdout.strip()
    try:
        yield pathlib.Path(mount), built.stdout
    finally:
        podman("image", "unmount", IMAGE, check=False)


def in_image(rootfs, *args, user="10001:10001"):
    return subprocess.run([shutil.which("chroot"), f"--userspec={user}", str(rootfs), *args],
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/home/ember"})


def test_the_binary_runs_in_the_image(image):
    rootfs, _ = image
    out = in_image(rootfs, "ember", "--version")
    assert out.returncode == 0 and re.match(r"ember \d+\.\d+\.\d+", out.stdout), out
    out = in_image(rootfs, "ember", "gpu-info")
    assert out.returncode == 0, out
    assert "backend" in out.stdout.lower() and "cpu" in out.stdout.lower(), out.stdout
    # A model on the image's /models volume, read by the non-root user.
    shutil.copy(SYNTHETIC / "tiny-llama-q8_0.gguf", rootfs / "models" / "tiny.gguf")
    try:
        out = in_image(rootfs, "ember", "inspect", "--memory", "--json", "/models/tiny.gguf")
        assert out.returncode == 0, out
        assert json.loads(out.stdout)["total_bytes"] > 64 << 20
        out = in_image(rootfs, "ember", "list")
        assert out.returncode == 0, out  # from /, ./models is the volume
    finally:
        (rootfs / "models" / "tiny.gguf").unlink()


def test_the_runtime_stage_is_slim_and_runs_as_ember(image):
    rootfs, _ = image
    assert not (rootfs / "usr" / "bin" / "g++").exists() and not (rootfs / "usr" / "bin" / "cmake").exists()
    assert not (rootfs / "ember").exists()  # the sources stayed in the build stage
    config = json.loads(podman("image", "inspect", IMAGE).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["ember"]
    assert config["Cmd"] == ["serve", "--bind", "0.0.0.0:8080", "--model-dirs", "/models"]
    assert "8080/tcp" in config["ExposedPorts"]
    passwd = (rootfs / "etc" / "passwd").read_text()
    assert re.search(r"^ember:x:10001:10001:", passwd, re.M), passwd
    st = (rootfs / "models").stat()
    assert (st.st_uid, st.st_gid) == (10001, 10001)  # the volume's mount point is ember's
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout)
    assert size < 400 << 20, f"runtime image is {size >> 20} MiB"
