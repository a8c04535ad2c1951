"""A loopback stand-in of the Hugging Face Hub's API, for pushes made by the real `huggingface_hub` client.

`with StandinHub(token=...) as hub:` serves on 127.0.0.1 from a background thread; `HfApi(endpoint=hub.url)`
talks to it. Routes (the ones `HfApi.whoami`, `create_repo` and `create_commit` use):
- GET  /api/whoami-v2                               401 unless the bearer token is `token`
- POST /api/repos/create                            409 (with the repo's url) when it exists; 403 for a
                                                    namespace other than the user's `namespaces`
- POST /api/validate-yaml                           400 when the README's YAML header does not parse
- POST /api/datasets/{ns}/{name}/preupload/{rev}    every file `regular`
- POST /api/datasets/{ns}/{name}/commit/{rev}       NDJSON: a header line, then one `file` line per file with
                                                    base64 content; stored as one commit
- GET  /api/datasets/{ns}/{name}/commits/{rev}      the commits, newest first (title, message = description)
Every request is logged with its route and Authorization header (`requests`). `fail[route] = status` makes a
route answer that status; `hold_preupload()` makes the next preupload wait until `release()`, and
`preupload_waiting` is set while it waits (to cancel a push at a known point); `hold_commit_reply()` stores the
next commit, sets `commit_stored` and answers only after `release()` (to kill a pusher after the Hub committed).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

REPO_ROUTE = re.compile(r"^/api/datasets/([^/]+/[^/]+)/(preupload|commits|commit)/([^/?]+)")
LFS_ROUTE = re.compile(r"^/datasets/([^/]+/[^/]+)\.git/info/lfs/objects/(batch|verify)$")
LFS_API = re.compile(r"^/api/datasets/([^/]+/[^/]+)/(lfs-batch|lfs-verify)/([^/?]+)")
LFS_SUFFIXES = (".parquet",)  # the Hub's default .gitattributes stores these with LFS, whatever their size


class StandinHub:
    def __init__(self, token: str, user: str = "alice", namespaces: tuple[str, ...] = ("alice", "alice-org"),
                 lfs: bool = False, lfs_threshold: int = 10 * 1024 * 1024):
        self.token = token
        self.user = user
        self.namespaces = namespaces
        self.repos: dict[str, dict[str, Any]] = {}  # repo id -> {"private": bool, "commits": [...]}
        self.requests: list[dict[str, Any]] = []
        self.fail: dict[str, int] = {}
        self.lfs = lfs  # answer preupload as the real Hub does: Parquet files and big files go by LFS
        self.lfs_threshold = lfs_threshold
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content uploaded to the LFS storage URL
        self.preupload_waiting = threading.Event()
        self._preupload_gate: threading.Event | None = None
        self.commit_stored = threading.Event()
        self._commit_reply_gate: threading.Event | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> StandinHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                hub._handle(self, "GET")

            def do_POST(self) -> None:
                hub._handle(self, "POST")

            def do_PUT(self) -> None:
                hub._handle(self, "PUT")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def hold_preupload(self) -> None:
        self._preupload_gate = threading.Event()

    def hold_commit_reply(self) -> None:
        self._commit_reply_gate = threading.Event()

    def release(self) -> None:
        for gate in (self._preupload_gate, self._commit_reply_gate):
            if gate is not None:
                gate.set()

    def commits(self, repo_id: str) -> list[dict[str, Any]]:
        return self.repos.get(repo_id, {}).get("commits", [])

    # -- routes ---------------------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        path = request.path.split("?", 1)[0]
        if path.startswith("/lfs-storage/"):  # a pre-signed storage URL: no Authorization header, as on S3
            return self._store_lfs(request, path.rsplit("/", 1)[1], body)
        lfs = LFS_ROUTE.match(path)
        if lfs is not None:
            path = f"/api/datasets/{lfs.group(1)}/lfs-{lfs.group(2)}/main"
        match = REPO_ROUTE.match(path) or LFS_API.match(path)
        route = match.group(2) if match else {"/api/whoami-v2": "whoami", "/api/repos/create": "create",
                                               "/api/validate-yaml": "validate-yaml"}.get(path, "unknown")
        with self._lock:
            self.requests.append({"method": method, "path": path, "route": route,
                                  "authorization": request.headers.get("Authorization")})
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._reply(request, 401, {"error": "Invalid credentials in Authorization header"})
        if route in self.fail:
            return self._reply(request, self.fail[route], {"error": f"stand-in fault on {route}"})
        if route == "whoami":
            return self._reply(request, 200, {"type": "user", "name": self.user,
                                              "orgs": [{"name": ns} for ns in self.namespaces[1:]]})
        if route == "create":
            return self._create(request, json.loads(body))
        if route == "validate-yaml":
            return self._validate(request, json.loads(body))
        if match is None:
            return self._reply(request, 404, {"error": f"no route {path}"})
        repo_id = match.group(1)
        if repo_id not in self.repos:
            return self._reply(request, 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        if route == "preupload":
            return self._preupload(request, json.loads(body))
        if route == "lfs-batch":
            return self._lfs_batch(request, repo_id, json.loads(body))
        if route == "lfs-verify":
            stored = json.loads(body)["oid"] in self.lfs_objects
            return self._reply(request, 200 if stored else 404, {} if stored else {"error": "object not uploaded"})
        if route == "commits":
            return self._reply(request, 200, [
                {"id": c["oid"], "title": c["summary"], "message": c["description"], "authors": [{"user": self.user}],
                 "date": "2026-12-04T00:00:00.000Z"} for c in reversed(self.commits(repo_id))])
        return self._commit(request, repo_id, body)

    def _create(self, request: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        namespace = body.get("organization") or self.user
        repo_id = f"{namespace}/{body['name']}"
        url = f"{self.url}/datasets/{repo_id}"
        if namespace not in self.namespaces:
            return self._reply(request, 403, {"error": f"You don't have the rights to create a dataset under {namespace}"})
        if repo_id in self.repos:
            return self._reply(request, 409, {"error": "You already created this dataset repo", "url": url})
        self.repos[repo_id] = {"private": body.get("visibility") == "private" or bool(body.get("private")),
                               "type": body.get("type"), "commits": []}
        return self._reply(request, 200, {"url": url, "name": repo_id})

    def _validate(self, request: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        content = body.get("content", "")
        try:
            header = content.split("---\n", 2)[1]
            assert isinstance(yaml.safe_load(header), dict)
        except (IndexError, AssertionError, yaml.YAMLError) as exc:
            return self._reply(request, 400, {"errors": [{"message": f"bad YAML header: {exc}"}]})
        return self._reply(request, 200, {"errors": [], "warnings": []})

    def _preupload(self, request: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        gate = self._preupload_gate
        if gate is not None:
            self.preupload_waiting.set()
            gate.wait(30)
            self._preupload_gate = None
        files = [{"path": f["path"], "uploadMode": "lfs" if self.lfs and self._is_lfs(f["path"], f["size"]) else "regular",
                  "shouldIgnore": False, "oid": None} for f in body["files"]]
        return self._reply(request, 200, {"files": files, "commitOid": "0" * 40})

    def _is_lfs(self, path: str, size: int) -> bool:
        return path.endswith(LFS_SUFFIXES) or size > self.lfs_threshold

    def _lfs_batch(self, request: BaseHTTPRequestHandler, repo_id: str, body: dict[str, Any]) -> None:
        """The LFS batch API: an upload action (a storage URL and a verify URL) for each object not stored yet."""
        objects = []
        for obj in body["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.lfs_objects:
                entry["actions"] = {
                    "upload": {"href": f"{self.url}/lfs-storage/{obj['oid']}"},
                    "verify": {"href": f"{self.url}/datasets/{repo_id}.git/info/lfs/objects/verify"}}
            objects.append(entry)
        return self._reply(request, 200, {"transfer": "basic", "objects": objects})

    def _store_lfs(self, request: BaseHTTPRequestHandler, oid: str, body: bytes) -> None:
        with self._lock:
            self.requests.append({"method": "PUT", "path": "/lfs-storage/", "route": "lfs-upload",
                                  "authorization": request.headers.get("Authorization")})
        if hashlib.sha256(body).hexdigest() != oid:
            return self._reply(request, 400, {"error": "content does not match its oid"})
        self.lfs_objects[oid] = body
        return self._reply(request, 200, {})

    def _commit(self, request: BaseHTTPRequestHandler, repo_id: str, body: bytes) -> None:
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        files = {line["value"]["path"]: base64.b64decode(line["value"]["content"])
                 for line in lines if line["key"] == "file"}
        pointers = {line["value"]["path"]: line["value"] for line in lines if line["key"] == "lfsFile"}
        missing = [path for path, pointer in pointers.items() if pointer["oid"] not in self.lfs_objects]
        if missing:
            return self._reply(request, 422, {"error": f"LFS objects not uploaded: {missing}"})
        files.update({path: self.lfs_objects[pointer["oid"]] for path, pointer in pointers.items()})
        oid = hashlib.sha1(body).hexdigest()
        commit = {"summary": header["summary"], "description": header.get("description", ""), "files": files,
                  "lfs": sorted(pointers), "oid": oid,
                  "other_lines": [line["key"] for line in lines if line["key"] not in ("header", "file", "lfsFile")]}
        with self._lock:
            self.repos[repo_id]["commits"].append(commit)
        gate = self._commit_reply_gate
        if gate is not None:  # committed, but the pusher hears nothing until release()
            self.commit_stored.set()
            gate.wait(60)
            self._commit_reply_gate = None
        return self._reply(request, 200, {"success": True, "commitOid": oid,
                                          "commitUrl": f"{self.url}/datasets/{repo_id}/commit/{oid}"})

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, body: dict[str, Any] | list[Any],
               headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(data)
