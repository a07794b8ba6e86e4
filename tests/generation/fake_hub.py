"""A local stand-in for the Hugging Face hub's HTTP API, as huggingface_hub's client speaks it.

It serves folders as model repositories: ``GET /api/models/{repo}/tree/main?recursive=true`` (the file
listing with sizes), ``HEAD`` and ``GET /{repo}/resolve/main/{path}`` with the hub's headers
(``X-Repo-Commit``, ``ETag``, ``Content-Length``) and HTTP ranges (``206 Partial Content``), so
``hf_hub_download``, ``list_repo_tree`` and ``parse_safetensors_file_metadata`` run unchanged against it.
``cut_after`` makes the first full download of a file stop after that many bytes (a dropped
connection), to test resuming. Every request is recorded.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Request:
    method: str
    path: str
    range: str | None


@dataclass
class FakeHub:
    repos: dict[str, Path]  # repo id -> folder
    cut_after: dict[tuple[str, str], int] = field(default_factory=dict)  # (repo, path) -> bytes
    requests: list[Request] = field(default_factory=list)

    def start(self) -> str:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                hub.requests.append(Request(self.command, path, self.headers.get("Range")))
                if path.startswith("/api/models/"):
                    return self._tree(path.removeprefix("/api/models/"))
                for repo_id, folder in hub.repos.items():
                    prefix = f"/{repo_id}/resolve/main/"
                    if path.startswith(prefix):
                        return self._file(repo_id, folder, path[len(prefix):], body)
                self._json({"error": "Repository not found"}, 404)

            def _json(self, payload: object, status: int = 200) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _tree(self, rest: str) -> None:
                repo_id = next((r for r in hub.repos if rest.startswith(r + "/tree/")), None)
                if repo_id is None:
                    return self._json({"error": "Repository not found"}, 404)
                folder = hub.repos[repo_id]
                entries = []
                for p in sorted(folder.rglob("*")):
                    rel = p.relative_to(folder).as_posix()
                    if p.is_dir():
                        entries.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": rel})
                    else:
                        data = p.read_bytes()
                        entry = {"type": "file", "oid": hashlib.sha1(data).hexdigest(), "size": len(data), "path": rel}
                        if p.suffix in (".safetensors", ".pt", ".bin"):
                            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                        entries.append(entry)
                self._json(entries)

            def _file(self, repo_id: str, folder: Path, rel: str, body: bool) -> None:
                target = folder / rel
                if not target.is_file():
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = target.read_bytes()
                start, end = 0, len(data) - 1
                ranged = self.headers.get("Range")
                if ranged and ranged.startswith("bytes="):
                    a, _, b = ranged[len("bytes="):].partition("-")
                    start = int(a)
                    end = min(int(b), len(data) - 1) if b else len(data) - 1
                chunk = data[start : end + 1]
                self.send_response(206 if ranged else 200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(chunk)))
                if ranged:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                if not body:
                    return
                cut = hub.cut_after.pop((repo_id, rel), None) if not ranged else None
                if cut is not None:
                    self.wfile.write(chunk[:cut])  # the connection drops mid-file
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(chunk)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
