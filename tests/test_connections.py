"""Connection bounds against a real `srgan serve`: slow headers are cut off, connections beyond the cap
get the service's JSON 503, and the server keeps serving."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx

from tests.live_server import LiveServer, live_server


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a socket timeout fails the test)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _rejected(server: LiveServer, reason: str) -> float:
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith(f'srgan_rejected_total{{reason="{reason}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_client_that_never_finishes_its_headers_is_disconnected(tiny_weights_dir: Path,
                                                                  tmp_path: Path) -> None:
    with live_server(tiny_weights_dir, tmp_path, header_timeout_s="1") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as half, \
                socket.create_connection(("127.0.0.1", server.port), timeout=30) as silent:
            half.sendall(b"POST /upscale HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
            assert _read_until_closed(half) == b""  # closed, nothing answered: there was no request
            assert _read_until_closed(silent) == b""
        assert _rejected(server, "header_timeout") >= 2
        assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_headers_that_arrive_in_time_are_served_on_a_kept_alive_connection(tiny_weights_dir: Path,
                                                                          tmp_path: Path) -> None:
    with live_server(tiny_weights_dir, tmp_path, header_timeout_s="5") as server:
        with httpx.Client(base_url=server.url) as client:  # one connection, kept alive
            assert [client.get("/healthz").status_code for _ in range(3)] == [200, 200, 200]
        assert _rejected(server, "header_timeout") == 0


def test_connections_beyond_the_cap_get_a_json_503_and_the_others_are_served(tiny_weights_dir: Path,
                                                                             tmp_path: Path) -> None:
    with live_server(tiny_weights_dir, tmp_path, max_connections="2", header_timeout_s="60") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as first, \
                socket.create_connection(("127.0.0.1", server.port), timeout=30) as second, \
                socket.create_connection(("127.0.0.1", server.port), timeout=30) as third:
            third.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            head, _, body = _read_until_closed(third).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503"), head
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (line.partition(b":") for line in head.split(b"\r\n")[1:])}
            assert headers[b"content-type"] == b"application/json"
            assert headers[b"retry-after"] == b"1"
            assert json.loads(body)["error"]["code"] == "too_many_connections"
            for sock in (first, second):  # within the cap: served
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                assert _read_until_closed(sock).startswith(b"HTTP/1.1 200")
        assert _rejected(server, "too_many_connections") == 1
