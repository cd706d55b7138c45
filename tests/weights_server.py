"""A real HTTP server on 127.0.0.1 that serves weights files, and can misbehave on purpose."""

from __future__ import annotations

import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch


class WeightsServer:
    """``files[name] = bytes``; ``mode[name]`` says how it is served (absent name: 404):

    "ok"; "cut" (closes half way); "slow" (a pause every 16 KB); "endless" (no length, the bytes again
    and again until the client hangs up, or 64 MB); "liar" (announces 100 times its size); "trickle" (one byte
    every ``trickle_s``, giving up after ``trickle_for_s``); "hold" (half, then the rest once ``release``
    is set, or after 20 s). A name in ``no_ranges`` ignores Range
    requests and does not advertise them (such a download cannot be resumed).
    """

    def __init__(self, trickle_s: float = 0.25, trickle_for_s: float = 8.0):
        self.files: dict[str, bytes] = {}
        self.mode: dict[str, str] = {}
        self.no_ranges: set[str] = set()
        self.requests: list[dict] = []
        self.sent: dict[str, int] = {}  # bytes written per name, over all requests
        self.trickle_s, self.trickle_for_s = trickle_s, trickle_for_s
        self.endless_cap = 64 << 20
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send(self, name: str, chunk: bytes) -> bool:
                try:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return False
                server.sent[name] = server.sent.get(name, 0) + len(chunk)
                return True

            def do_GET(self):  # http.server's naming
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append({"path": self.path, "range": self.headers.get("Range")})
                data = server.files.get(name)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                mode = server.mode.get(name, "ok")
                ranges = name not in server.no_ranges
                start = 0
                header = self.headers.get("Range")
                if header and header.startswith("bytes=") and ranges:
                    start = int(header[6:].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                if ranges:
                    self.send_header("Accept-Ranges", "bytes")
                body = data[start:]
                if mode == "endless":
                    self.send_header("Connection", "close")  # the body ends when the connection does
                    self.end_headers()
                    self.close_connection = True
                    sent = 0
                    while sent < server.endless_cap:  # so a client that never stops still ends
                        if not self.send(name, body):
                            return
                        sent += len(body)
                    return
                self.send_header("Content-Length", str(len(body) * (100 if mode == "liar" else 1)))
                self.end_headers()
                if mode in ("cut", "hold"):
                    if not self.send(name, body[: len(body) // 2]):
                        return
                    if mode == "cut":
                        self.close_connection = True
                        return
                    server.release.wait(20)
                    self.send(name, body[len(body) // 2:])
                    return
                if mode == "trickle":
                    stop = time.monotonic() + server.trickle_for_s
                    for offset in range(len(body)):
                        if time.monotonic() > stop or not self.send(name, body[offset: offset + 1]):
                            break
                        time.sleep(server.trickle_s)
                    self.close_connection = True
                    return
                step = 1 << 14
                for offset in range(0, len(body), step):
                    if not self.send(name, body[offset: offset + step]):
                        return
                    if mode == "slow":
                        time.sleep(0.02)
                if mode == "liar":
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        # shutdown() waits for the loop's next look at its flag: every 0.5 s by default, per test.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def mirror(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/models"

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
