"""gan.data.fetch against a real HTTP server on 127.0.0.1 (no internet needed)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import random
import re
import socket
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from gan.data.fetch import DownloadError, Fetched, download, part_path_for
from gan.fsio import sha256_of
from tests.conftest import local_http_server

ETAG = '"dped-v1"'


def _make_payload() -> bytes:
    """A valid zip of a few hundred KB of random (incompressible) bytes."""
    rng = random.Random(1234)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for i in range(3):
            archive.writestr(f"dped/iphone/training_data/iphone/{i}.jpg", rng.randbytes(100_000))
    return buffer.getvalue()


PAYLOAD = _make_payload()
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class ServerState:
    """What the test tells the server to do (per path) and what the server saw."""

    base: str = ""
    behaviour: dict[str, str] = field(default_factory=dict)  # path -> ok|drop|403|404|html|norange
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def headers_for(self, path: str) -> list[dict[str, str]]:
        return [headers for seen, headers in self.requests if seen == path]


class Handler(http.server.BaseHTTPRequestHandler):
    state: ServerState  # set on the subclass made per server

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        # Lower-case keys so assertions do not depend on urllib's header capitalisation.
        headers = {key.lower(): value for key, value in self.headers.items()}
        self.state.requests.append((self.path, headers))
        behaviour = self.state.behaviour.get(self.path, "ok")
        if behaviour in ("403", "404"):
            self.send_error(int(behaviour))
            return
        if behaviour == "html":
            self._send(200, b"<!DOCTYPE html><html><body>Please log in</body></html>", "text/html; charset=utf-8")
            return
        wanted = headers.get("range")
        if_range = headers.get("if-range")
        if wanted is None or behaviour == "norange" or (if_range is not None and if_range != ETAG):
            if behaviour == "drop" and wanted is None:
                self._drop_halfway()
            else:
                self._send(200, PAYLOAD, "application/zip")
            return
        self._send_range(wanted)

    def _send(self, code: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", ETAG)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_range(self, wanted: str) -> None:
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted)
        assert match, wanted
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) else len(PAYLOAD) - 1
        if start >= len(PAYLOAD):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = PAYLOAD[start : end + 1]
        self._send(206, body, "application/zip", {"Content-Range": f"bytes {start}-{end}/{len(PAYLOAD)}"})

    def _drop_halfway(self) -> None:
        """Promise the whole payload, send half, then hang up."""
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.send_header("ETag", ETAG)
        self.end_headers()
        self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True


@pytest.fixture
def server() -> Iterator[ServerState]:
    state = ServerState()
    with local_http_server(Handler, state=state) as base:
        state.base = base
        yield state


def _free_port() -> int:
    """A port nobody listens on: bind one, then release it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(urls: list[str], tmp_path: Path, **kwargs: object) -> Fetched:
    kwargs.setdefault("timeout", 5.0)
    return download(urls, tmp_path / "out" / "dped.zip", part_dir=tmp_path / "downloads", progress=False, **kwargs)



def test_part_file_is_named_after_the_url(tmp_path: Path) -> None:
    url = "http://example.org/files/dped.zip?token=1"
    expected = hashlib.sha1(url.encode()).hexdigest()[:12] + "-dped.zip.part"
    assert part_path_for(url, tmp_path).name == expected
    assert part_path_for("http://example.org/", tmp_path).name.endswith("-archive.part")


def test_plain_download(server: ServerState, tmp_path: Path) -> None:
    url = server.url("/dped.zip")
    fetched = _get([url], tmp_path, sha256=PAYLOAD_SHA.upper())
    assert fetched == Fetched(path=tmp_path / "out" / "dped.zip", url=url, sha256=PAYLOAD_SHA, size=len(PAYLOAD))
    assert fetched.path.read_bytes() == PAYLOAD
    assert "ppe-gan" in server.requests[0][1]["user-agent"]
    assert list((tmp_path / "downloads").iterdir()) == []  # part and sidecar are gone


def test_interrupted_download_resumes_on_the_next_call(server: ServerState, tmp_path: Path) -> None:
    server.behaviour["/dped.zip"] = "drop"
    url = server.url("/dped.zip")
    part = part_path_for(url, tmp_path / "downloads")

    with pytest.raises(DownloadError) as failure:
        _get([url], tmp_path, sha256=PAYLOAD_SHA, retries=0)
    message = str(failure.value)
    assert url in message
    assert "connection dropped" in message and "partial file is kept" in message
    assert "(1 try" in message
    assert 0 < part.stat().st_size < len(PAYLOAD)
    sidecar = json.loads(part.with_name(part.name + ".json").read_text())
    assert sidecar["url"] == url and sidecar["validator"] == ETAG and sidecar["total"] == len(PAYLOAD)
    assert not (tmp_path / "out" / "dped.zip").exists()

    fetched = _get([url], tmp_path, sha256=PAYLOAD_SHA, retries=0)
    second = server.requests[-1][1]
    assert second["range"] == f"bytes={len(PAYLOAD) // 2}-"
    assert second["if-range"] == ETAG
    assert fetched.sha256 == PAYLOAD_SHA == sha256_of(fetched.path)
    assert not part.exists()


def test_retry_recovers_a_drop_within_one_call(server: ServerState, tmp_path: Path) -> None:
    server.behaviour["/dped.zip"] = "drop"
    fetched = _get([server.url("/dped.zip")], tmp_path, sha256=PAYLOAD_SHA, retries=1)
    assert fetched.path.read_bytes() == PAYLOAD
    seen = server.headers_for("/dped.zip")
    assert len(seen) == 2
    assert "range" not in seen[0] and seen[1]["range"] == f"bytes={len(PAYLOAD) // 2}-"


def test_complete_part_is_accepted_after_416(server: ServerState, tmp_path: Path) -> None:
    # As if a previous run received every byte but was killed before accepting.
    server.behaviour["/dped.zip"] = "drop"
    url = server.url("/dped.zip")
    with pytest.raises(DownloadError):
        _get([url], tmp_path, retries=0)
    part_path_for(url, tmp_path / "downloads").write_bytes(PAYLOAD)

    fetched = _get([url], tmp_path, sha256=PAYLOAD_SHA)
    assert server.requests[-1][1]["range"] == f"bytes={len(PAYLOAD)}-"
    assert fetched.sha256 == PAYLOAD_SHA


def test_server_ignoring_range_starts_over(server: ServerState, tmp_path: Path) -> None:
    server.behaviour["/dped.zip"] = "drop"
    url = server.url("/dped.zip")
    with pytest.raises(DownloadError):
        _get([url], tmp_path, retries=0)
    assert part_path_for(url, tmp_path / "downloads").exists()

    server.behaviour["/dped.zip"] = "norange"
    fetched = _get([url], tmp_path, sha256=PAYLOAD_SHA, retries=0)
    assert "range" in server.requests[-1][1]  # it asked to resume, got a full 200 instead
    assert fetched.size == len(PAYLOAD)
    assert fetched.path.read_bytes() == PAYLOAD


def test_checksum_mismatch_is_refused_and_the_part_deleted(server: ServerState, tmp_path: Path) -> None:
    url = server.url("/dped.zip")
    wrong = hashlib.sha256(b"another archive").hexdigest()
    with pytest.raises(DownloadError) as failure:
        _get([url], tmp_path, sha256=wrong)
    message = str(failure.value)
    assert wrong in message and PAYLOAD_SHA in message and "checksum mismatch" in message
    assert "deleted" in message
    assert not (tmp_path / "out" / "dped.zip").exists()
    assert not part_path_for(url, tmp_path / "downloads").exists()


def test_all_mirrors_failing_gives_one_message(server: ServerState, tmp_path: Path) -> None:
    server.behaviour["/forbidden.zip"] = "403"
    server.behaviour["/missing.zip"] = "404"
    urls = [server.url("/forbidden.zip"), server.url("/missing.zip"), f"http://127.0.0.1:{_free_port()}/dped.zip"]
    with pytest.raises(DownloadError) as failure:
        _get(urls, tmp_path)
    message = str(failure.value)
    lines = message.splitlines()
    for url, answer in zip(urls, ["HTTP 403 Forbidden", "HTTP 404 Not Found", "connection refused"]):
        assert any(url in line and answer in line for line in lines), (url, answer, message)
    assert "data.archive" in message and "dvc exp run -S data.archive=" in message
    assert "403 since 2022" in message


def test_html_page_is_not_an_archive(server: ServerState, tmp_path: Path) -> None:
    server.behaviour["/login"] = "html"
    url = server.url("/login")
    with pytest.raises(DownloadError) as failure:
        _get([url], tmp_path)
    message = str(failure.value)
    assert "HTML/text page, not an archive" in message and "text/html" in message
    assert not (tmp_path / "out" / "dped.zip").exists()
    assert not part_path_for(url, tmp_path / "downloads").exists()


def test_falls_through_to_the_next_mirror(server: ServerState, tmp_path: Path) -> None:
    server.behaviour["/forbidden.zip"] = "403"
    good = server.url("/dped.zip")
    fetched = _get([server.url("/forbidden.zip"), good], tmp_path, sha256=PAYLOAD_SHA)
    assert fetched.url == good


def test_empty_url_list_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="data.archive"):
        _get([], tmp_path)


def test_bad_pinned_digest_is_caught_before_downloading(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a SHA-256"):
        _get(["http://127.0.0.1:9/x.zip"], tmp_path, sha256="abc")
