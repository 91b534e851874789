"""`servers.recipe.http_get`, the supervisor's HTTP probe, against a real local HTTP server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from servers.recipe import free_port, http_get


class _Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = int(self.path.strip("/"))
        body = b'{"ready": %s}' % (b"true" if status == 200 else b"false")
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("status", "body"), [(200, b'{"ready": true}'), (503, b'{"ready": false}')]
)
def test_any_status_comes_back_with_its_body(server: str, status: int, body: bytes) -> None:
    assert http_get(f"{server}/{status}", timeout=5) == (status, body)


def test_nothing_listening_is_an_os_error() -> None:
    with pytest.raises(OSError):
        http_get(f"http://127.0.0.1:{free_port()}/", timeout=5)


def test_a_server_that_does_not_speak_http_is_an_os_error() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def babble() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(1024)
                connection.sendall(b"not http at all\r\n\r\n")

        threading.Thread(target=babble, daemon=True).start()
        with pytest.raises(OSError):
            http_get(f"http://127.0.0.1:{port}/", timeout=5)


def test_a_proxy_in_the_environment_is_not_used(server: str) -> None:
    # A fresh interpreter: urllib reads the proxy variables when its first opener is built.
    probe = f"from servers.recipe import http_get; print(http_get('{server}/200', 5)[0])"
    proxy = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = os.environ | {"http_proxy": proxy, "HTTP_PROXY": proxy, "no_proxy": "", "NO_PROXY": ""}
    ran = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert ran.stdout.strip() == "200", ran.stderr
