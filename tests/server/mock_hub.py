"""A local stand-in for the Hugging Face hub (HF_ENDPOINT points ember at it):
  GET  /api/models/ORG/NAME[/revision/REV]   {"id", "siblings": [{"rfilename"}]}
  HEAD/GET /ORG/NAME/resolve/REV/FILE         302 to localhost/cdn/... (another host name) with
                                              X-Linked-Etag / X-Linked-Size
  GET  /cdn/ORG/NAME/FILE                     the bytes, with Range (206)
Private repos answer 401 without `Authorization: Bearer <token>`; unknown repos, files and
revisions 404. Fault modes per file: "cut" (the first download stops halfway), "badhash" (the
etag is wrong), "notgguf" (bytes that are not GGUF, correct etag), "slow" (trickles).
"""
import hashlib
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Repo:
    def __init__(self, files, private=False, faults=None, revisions=("main",)):
        self.files = files          # name -> bytes
        self.private = private
        self.faults = faults or {}  # name -> mode
        self.revisions = revisions


class MockHub:
    def __init__(self, token="hf_test_token"):
        self.repos = {}
        self.token = token
        self.requests = []  # (method, path, range header) as received
        self.cut_done = set()
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
        self.server.shutdown()
        self.server.server_close()

    def add(self, name, repo):
        self.repos[name] = repo

    # ---- request handling ----
    def reply(self, h, status, body=b"", headers=None, head=False):
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def authorized(self, h, repo):
        return not repo.private or h.headers.get("Authorization") == f"Bearer {self.token}"

    def handle(self, h, head):
        self.requests.append((h.command, h.path, h.headers.get("Range")))
        m = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?$", h.path)
        if m:
            repo = self.repos.get(m.group(1))
            if repo is None or (m.group(2) or "main") not in repo.revisions:
                return self.reply(h, 404, b'{"error":"Repository not found"}')
            if not self.authorized(h, repo):
                return self.reply(h, 401, b'{"error":"Invalid credentials"}')
            import json
            body = json.dumps({"id": m.group(1), "siblings": [{"rfilename": f} for f in repo.files]}).encode()
            return self.reply(h, 200, body, {"Content-Type": "application/json"}, head)
        m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", h.path)
        if m:
            repo = self.repos.get(m.group(1))
            if repo is None or m.group(2) not in repo.revisions or m.group(3) not in repo.files:
                return self.reply(h, 404, b"Entry not found", head=head)
            if not self.authorized(h, repo):
                return self.reply(h, 401, b"Invalid credentials", head=head)
            data = repo.files[m.group(3)]
            sha = hashlib.sha256(data).hexdigest()
            if repo.faults.get(m.group(3)) == "badhash":
                sha = "0" * 64
            # The CDN is another host name for the same server, as the real hub redirects to
            # another host: the token must not follow the redirect.
            cdn = f"http://localhost:{self.server.server_address[1]}"
            return self.reply(h, 302, b"", {"Location": f"{cdn}/cdn/{m.group(1)}/{m.group(3)}",
                                            "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)),
                                            "ETag": f'"{sha}"'}, head)
        m = re.match(r"^/cdn/([^/]+/[^/]+)/(.+)$", h.path)
        if m and m.group(1) in self.repos and m.group(2) in self.repos[m.group(1)].files:
            repo = self.repos[m.group(1)]
            name = m.group(2)
            data = repo.files[name]
            if h.headers.get("Authorization"):
                return self.reply(h, 400, b"the CDN must not receive the hub token", head=head)
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
            mode = repo.faults.get(name)
            if mode == "cut" and name not in self.cut_done:
                self.cut_done.add(name)
                h.wfile.write(body[:len(body) // 2])
                h.wfile.flush()
                h.close_connection = True
                h.connection.shutdown(2)
                return
            if mode == "slow":
                for i in range(0, len(body), max(1, len(body) // 20)):
                    h.wfile.write(body[i:i + max(1, len(body) // 20)])
                    h.wfile.flush()
                    time.sleep(0.15)
                return
            h.wfile.write(body)
            return
        self.reply(h, 404, b"not found", head=head)
