"""A real HTTP server on 127.0.0.1 that serves weights files, and can misbehave on purpose."""

from __future__ import annotations

import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch


class WeightsServer:
    """``files[name] = bytes``; ``mode[name]`` is "ok", "cut" (closes half way), "slow" or absent (404)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.mode: dict[str, str] = {}
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's naming
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append({"path": self.path, "range": self.headers.get("Range")})
                data = server.files.get(name)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                header = self.headers.get("Range")
                if header and header.startswith("bytes=") and server.mode.get(name) != "no-range":
                    start = int(header[6:].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                mode = server.mode.get(name, "ok")
                if mode == "cut":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                step = 1 << 14
                for offset in range(0, len(body), step):
                    try:
                        self.wfile.write(body[offset: offset + step])
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    if mode == "slow":
                        time.sleep(0.02)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def mirror(self) -> str:
        host, port = self.httpd.server_address
        return f"http://{host}:{port}/models"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def state_dict_bytes(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


class _MakesAFolder:
    """Unpickling this would call os.mkdir: a stand-in for any code a hostile weights file runs."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.mkdir, (self.marker,))


def save_code_pickle(path, marker, key: str = "weight") -> None:
    """A .pth whose loading would create the folder ``marker`` if pickled code were allowed to run."""
    torch.save({key: _MakesAFolder(str(marker))}, path)
