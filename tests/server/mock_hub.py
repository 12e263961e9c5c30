"""A local stand-in for the Hugging Face hub (HF_ENDPOINT points ember at it):
  GET  /api/models/ORG/NAME[/revision/REV]   {"id", "siblings": [{"rfilename"}]}
  HEAD/GET /ORG/NAME/resolve/REV/FILE         302 to localhost/cdn/... (another host name) with
                                              X-Linked-Etag / X-Linked-Size
  GET  /cdn/ORG/NAME/FILE                     the bytes, with Range (206)
Private repos answer 401 without `Authorization: Bearer <token>`; gated ones also 403 for another
token; unknown repos, files and revisions 404. `Repo(hang_listing=True)`: the listing never
answers. Fault modes per file (several joined by ","):
  cut        the first download stops halfway (the connection closes)
  stall      the first download sends half, then nothing more (the connection stays open)
  slow       the bytes trickle (20 pieces, 0.15 s apart)
  badhash    the etag is wrong;  noetag: no X-Linked-Etag at all (the hub cannot vouch for it)
  notgguf    (a label: the test gives bytes that are not GGUF)
  hanghead   the HEAD (and GET) of /resolve/ never answers
  huge       X-Linked-Size says 10**15 bytes
  503x2      the first 2 downloads answer 503 with Retry-After: 1 (any status and count:
             429x1, 502x9; 502 has no Retry-After)
"""
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Repo:
    def __init__(self, files, private=False, faults=None, revisions=("main",), gated=False,
                 hang_listing=False):
        self.files = files          # name -> bytes
        self.private = private or gated
        self.gated = gated
        self.faults = faults or {}  # name -> "mode[,mode...]"
        self.revisions = revisions
        self.hang_listing = hang_listing


class MockHub:
    def __init__(self, token="hf_test_token"):
        self.repos = {}
        self.token = token
        self.requests = []  # (method, path, range header) as received
        self.done = set()   # (repo, file, mode) of one-shot faults already played
        self.counts = {}    # (repo, file) -> downloads answered with an error status so far
        self.closing = threading.Event()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub.handle(self, head=True)

            def do_GET(self):
                hub.handle(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()

    def add(self, name, repo):
        self.repos[name] = repo

    def gets(self, path_end):
        """How many downloads (GET on the CDN) of a file the hub answered."""
        return sum(1 for m, p, _ in self.requests if m == "GET" and p.startswith("/cdn/") and p.endswith(path_end))

    # ---- request handling ----
    def reply(self, h, status, body=b"", headers=None, head=False):
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def hang(self, seconds=60):
        """Answers nothing for a while (until the hub closes)."""
        self.closing.wait(seconds)

    def access(self, h, repo):
        """None when allowed, else the status to answer (401 no/bad token, 403 gated)."""
        if not repo.private:
            return None
        auth = h.headers.get("Authorization")
        if auth == f"Bearer {self.token}":
            return None
        return 403 if repo.gated and auth else 401

    @staticmethod
    def modes(repo, name):
        return set(filter(None, repo.faults.get(name, "").split(",")))

    def once(self, repo_name, name, mode):
        """True the first time a one-shot fault plays for this file."""
        key = (repo_name, name, mode)
        if key in self.done:
            return False
        self.done.add(key)
        return True

    def handle(self, h, head):
        self.requests.append((h.command, h.path, h.headers.get("Range")))
        m = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?$", h.path)
        if m:
            repo = self.repos.get(m.group(1))
            if repo is None or (m.group(2) or "main") not in repo.revisions:
                return self.reply(h, 404, b'{"error":"Repository not found"}')
            if self.access(h, repo):
                return self.reply(h, self.access(h, repo), b'{"error":"Invalid credentials"}')
            if repo.hang_listing:
                return self.hang()
            body = json.dumps({"id": m.group(1), "siblings": [{"rfilename": f} for f in repo.files]}).encode()
            return self.reply(h, 200, body, {"Content-Type": "application/json"}, head)
        m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", h.path)
        if m:
            repo = self.repos.get(m.group(1))
            if repo is None or m.group(2) not in repo.revisions or m.group(3) not in repo.files:
                return self.reply(h, 404, b"Entry not found", head=head)
            if self.access(h, repo):
                return self.reply(h, self.access(h, repo), b"Invalid credentials", head=head)
            modes = self.modes(repo, m.group(3))
            if "hanghead" in modes:
                return self.hang()
            data = repo.files[m.group(3)]
            sha = hashlib.sha256(data).hexdigest()
            if "badhash" in modes:
                sha = "0" * 64
            # The CDN is another host name for the same server, as the real hub redirects to
            # another host: the token must not follow the redirect.
            cdn = f"http://localhost:{self.server.server_address[1]}"
            headers = {"Location": f"{cdn}/cdn/{m.group(1)}/{m.group(3)}",
                       "X-Linked-Size": str(10**15 if "huge" in modes else len(data))}
            if "noetag" not in modes:
                headers["X-Linked-Etag"] = f'"{sha}"'
                headers["ETag"] = f'"{sha}"'
            return self.reply(h, 302, b"", headers, head)
        m = re.match(r"^/cdn/([^/]+/[^/]+)/(.+)$", h.path)
        if m and m.group(1) in self.repos and m.group(2) in self.repos[m.group(1)].files:
            return self.cdn(h, m.group(1), m.group(2), head)
        self.reply(h, 404, b"not found", head=head)

    def cdn(self, h, repo_name, name, head):
        repo = self.repos[repo_name]
        data = repo.files[name]
        modes = self.modes(repo, name)
        if h.headers.get("Authorization"):
            return self.reply(h, 400, b"the CDN must not receive the hub token", head=head)
        for mode in modes:
            fault = re.match(r"^(\d{3})x(\d+)$", mode)
            if fault and not head:
                n = self.counts.get((repo_name, name), 0)
                if n < int(fault.group(2)):
                    self.counts[(repo_name, name)] = n + 1
                    status = int(fault.group(1))
                    retry = {} if status == 502 else {"Retry-After": "1"}
                    return self.reply(h, status, b"temporarily unavailable", retry)
        start = 0
        rng = h.headers.get("Range")
        status = 200
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        if rng:
            start = int(re.match(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                return self.reply(h, 416, b"", {"Content-Range": f"bytes */{len(data)}"}, head)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if head:
            return
        if "cut" in modes and self.once(repo_name, name, "cut"):
            h.wfile.write(body[:len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(2)
            return
        if "stall" in modes and self.once(repo_name, name, "stall"):
            h.wfile.write(body[:len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            return self.hang()
        if "slow" in modes:
            piece = max(1, len(body) // 20)
            for i in range(0, len(body), piece):
                h.wfile.write(body[i:i + piece])
                h.wfile.flush()
                time.sleep(0.15)
            return
        h.wfile.write(body)
