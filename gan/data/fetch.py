"""Download the dataset archive over HTTP(S) from a list of mirrors, resumably.

The DPED archive is large and its hosts are unreliable, so a download must:

* stream to disk (never hold the body in memory),
* survive a dropped connection: the partial body stays in ``part_dir`` and the
  next attempt (in this call or the next run) continues it with an HTTP Range
  request,
* never leave a half-written or wrong file at ``dest``: the part file is only
  moved into place (atomically) once it is complete, looks like an archive and
  matches the pinned SHA-256,
* explain, when every mirror fails, what each one answered and how to use a
  local copy instead.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import posixpath
import re
import shutil
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from gan.fsio import atomic_path, sha256_of, write_text

__all__ = ["DownloadError", "Fetched", "download", "part_path_for"]

USER_AGENT = "ppe-gan/0.1 (DPED dataset download; python-urllib)"

# Big enough to keep syscalls cheap, small enough that a drop loses little.
_CHUNK = 1 << 16
# A tar header's "ustar" magic sits at offset 257, so sniff a little more than that.
_SNIFF = 512
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")

_LOCAL_COPY_ADVICE = (
    "To use a local copy instead, set data.archive in params.yaml to a local zip, tar, "
    "tar.gz or an extracted folder, e.g.\n"
    "    dvc exp run -S data.archive=/path/to/dped.zip\n"
    "or edit data.archive in params.yaml and run the pipeline again.\n"
    "Note: the official DPED host (people.ee.ethz.ch / data.vision.ee.ethz.ch) has "
    "answered HTTP 403 since 2022, so a local copy is often the only way."
)


class DownloadError(RuntimeError):
    """No mirror delivered a usable archive; the message says why, per mirror."""


@dataclass(frozen=True)
class Fetched:
    """The archive that was accepted and where it came from."""

    path: Path  # the accepted archive (== dest)
    url: str  # the mirror it came from
    sha256: str  # hex digest of the accepted file
    size: int  # bytes


class _MirrorFailed(Exception):
    """This mirror cannot deliver the archive; `reason` is shown to the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Dropped(Exception):
    """The connection broke mid-transfer; the part file holds what arrived."""

    def __init__(self, have: int, total: int | None, cause: str) -> None:
        super().__init__(cause)
        self.have = have
        self.total = total
        self.cause = cause


@dataclass
class _PartInfo:
    """What the sidecar remembers about a part file, so a resume can be validated."""

    url: str
    validator: str | None = None  # ETag, else Last-Modified; sent back as If-Range
    total: int | None = None  # full size of the archive, when the server said
    content_type: str | None = None


def part_path_for(url: str, part_dir: Path) -> Path:
    """Where the partial download of `url` lives: one file per URL, stable across runs."""
    url_hash = hashlib.sha1(url.encode("utf-8")).hexdigest()[:12]
    base = posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
    # The basename only makes the folder readable; keep it filesystem-safe and short.
    base = _SAFE_NAME.sub("_", base)[:100] or "archive"
    return part_dir / f"{url_hash}-{base}.part"


def download(
    urls: Sequence[str],
    dest: Path,
    *,
    part_dir: Path,
    sha256: str | None = None,
    retries: int = 2,
    timeout: float = 30.0,
    progress: bool = True,
) -> Fetched:
    """Download the archive from the first mirror that delivers it, into `dest`.

    Mirrors are tried in order. Each one is retried `retries` more times when the
    connection drops mid-body, resuming from the part file in `part_dir`. The
    result is accepted only if it is complete, looks like an archive (zip, tar,
    gzip, bzip2, xz) and, when `sha256` is given, has that digest.

    Raises DownloadError with one message covering every mirror when none works.
    """
    if isinstance(urls, str):
        # A lone string would otherwise be iterated character by character.
        urls = [urls]
    if retries < 0:
        raise ValueError(f"retries must be 0 or more, got {retries}")
    expected = _normalise_digest(sha256)
    if not urls:
        raise DownloadError("No download URL was given for the dataset archive.\n" + _LOCAL_COPY_ADVICE)

    part_dir.mkdir(parents=True, exist_ok=True)
    failures: list[tuple[str, str]] = []
    for url in urls:
        try:
            return _fetch_from(url, dest, part_dir, expected, retries, timeout, progress)
        except _MirrorFailed as failure:
            failures.append((url, failure.reason))
    raise DownloadError(_all_failed_message(failures))


def _normalise_digest(sha256: str | None) -> str | None:
    """Lower-case the pinned digest and catch typos before any bytes are fetched."""
    if sha256 is None:
        return None
    digest = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(
            f"The pinned sha256 {sha256!r} is not a SHA-256 hex digest (64 hex characters); "
            "fix it in params.yaml or leave it empty to skip the check."
        )
    return digest


def _fetch_from(
    url: str,
    dest: Path,
    part_dir: Path,
    expected: str | None,
    retries: int,
    timeout: float,
    progress: bool,
) -> Fetched:
    """Try one mirror, with retries on drops; raise _MirrorFailed with the reason."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise _MirrorFailed("not an http:// or https:// URL")

    part = part_path_for(url, part_dir)
    sidecar = part.with_name(part.name + ".json")
    tries = retries + 1
    for attempt in range(1, tries + 1):
        try:
            info = _transfer(url, part, sidecar, timeout, progress)
            break
        except _Dropped as drop:
            if attempt == tries:
                raise _MirrorFailed(_drop_reason(drop, tries, part)) from None
    return _accept(url, part, sidecar, info, dest, expected)


def _drop_reason(drop: _Dropped, tries: int, part: Path) -> str:
    """Say how far the transfer got and that the next run can continue it."""
    of_total = f" of {_human_bytes(drop.total)}" if drop.total is not None else ""
    plural = "try" if tries == 1 else "tries"
    if drop.have > 0:
        outcome = f"the partial file is kept ({part}) and the next run resumes"
    else:
        outcome = "nothing was received"
    return f"connection dropped after {_human_bytes(drop.have)}{of_total} ({tries} {plural}; {drop.cause}); {outcome}"


def _transfer(url: str, part: Path, sidecar: Path, timeout: float, progress: bool) -> _PartInfo:
    """Bring `part` up to the full body of `url`, resuming it when possible.

    Returns what is known about the body. Raises _Dropped when the connection
    breaks (the part file keeps what arrived) and _MirrorFailed when the server
    refuses.
    """
    info = _load_sidecar(sidecar, url)
    have = part.stat().st_size if part.exists() else 0
    if have and info is None:
        # Without the recorded validator we cannot tell whether these bytes
        # belong to the file the server has now, so they are not worth keeping.
        _discard(part, sidecar)
        have = 0
    validator = info.validator if (have and info) else None

    try:
        response = _open(url, timeout, have, validator)
    except _Dropped as drop:
        # _open cannot know the total; the sidecar may, and it makes the message clearer.
        raise _Dropped(drop.have, info.total if info else None, drop.cause) from None
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and have and info is not None:
            if info.total == have:
                return info  # an earlier run got every byte but stopped before accepting
            _discard(part, sidecar)
            return _transfer(url, part, sidecar, timeout, progress)
        raise _MirrorFailed(f"HTTP {err.code} {err.reason}") from None

    with response:
        status = response.status
        headers = response.headers
        if status == 206 and have:
            start, total = _parse_content_range(headers.get("Content-Range"))
            assert info is not None  # a part without a sidecar was discarded above
            now = _validator(headers)
            changed = bool(info.validator and now and now != info.validator)
            if start != have or changed:
                # The server resumed from the wrong place or a different file version:
                # appending would corrupt the archive, so start this URL over.
                response.close()
                _discard(part, sidecar)
                return _transfer(url, part, sidecar, timeout, progress)
            info.total = total if total is not None else info.total
            mode = "ab"
        elif status == 200 or status == 206:
            # 200 while a part exists: the server ignored Range or the file changed (If-Range).
            have = 0
            info = _PartInfo(
                url=url,
                validator=_validator(headers),
                total=_content_length(headers),
                content_type=headers.get("Content-Type"),
            )
            if status == 206:  # a 206 to a request without Range: trust Content-Range
                start, total = _parse_content_range(headers.get("Content-Range"))
                if start != 0:
                    shown = headers.get("Content-Range") or "no Content-Range"
                    raise _MirrorFailed(f"answered 206 Partial Content ({shown}) to a request for the whole file")
                info.total = total
            mode = "wb"
        else:
            raise _MirrorFailed(f"HTTP {status} {response.reason} (expected 200 OK)")

        _save_sidecar(sidecar, info)
        remaining = _content_length(headers)
        _stream_body(response, part, mode, have, remaining, info.total, timeout, progress)
    return info


def _open(url: str, timeout: float, have: int, validator: str | None) -> http.client.HTTPResponse:
    """Send the GET (a Range request when resuming); map network failures to our errors."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    if have:
        request.add_header("Range", f"bytes={have}-")
        if validator:
            request.add_header("If-Range", validator)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError:
        raise
    except urllib.error.URLError as err:
        raise _MirrorFailed(_describe_network_error(err.reason, timeout)) from None
    except (ConnectionError, TimeoutError, http.client.HTTPException) as err:
        # The server accepted the connection and then broke it before the
        # headers were complete: worth another try.
        raise _Dropped(have, None, _describe_network_error(err, timeout)) from None
    except ValueError as err:
        raise _MirrorFailed(f"not a valid URL ({err})") from None


def _describe_network_error(reason: object, timeout: float) -> str:
    """Turn a socket-level failure into a few plain words."""
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return f"host name could not be resolved ({reason.strerror})"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, ssl.SSLError):
        return f"TLS/SSL error: {reason}"
    if isinstance(reason, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(reason, http.client.RemoteDisconnected):
        return "server closed the connection without answering"
    return f"network error: {reason}"


def _stream_body(
    response: http.client.HTTPResponse,
    part: Path,
    mode: str,
    have: int,
    remaining: int | None,
    total: int | None,
    timeout: float,
    progress: bool,
) -> None:
    """Copy the body into the part file chunk by chunk; raise _Dropped if it ends early."""
    received = 0
    with open(part, mode) as out, tqdm(
        total=total,
        initial=have,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=part.name.split("-", 1)[-1].removesuffix(".part"),
        disable=not progress,
    ) as bar:
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (http.client.HTTPException, OSError) as err:
                # Write errors are outside this try on purpose: a full disk is
                # not the mirror's fault and must not be retried as a drop.
                raise _Dropped(have + received, total, _describe_network_error(err, timeout)) from None
            if not chunk:
                break
            out.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    # http.client returns b"" rather than raising when a body stops short of its
    # Content-Length, so the length check is what detects most drops.
    if remaining is not None and received < remaining:
        raise _Dropped(have + received, total, f"body ended {_human_bytes(remaining - received)} short")


def _accept(url: str, part: Path, sidecar: Path, info: _PartInfo, dest: Path, expected: str | None) -> Fetched:
    """Check the complete part file and move it to `dest`, or explain why not."""
    size = part.stat().st_size
    if info.total is not None and size != info.total:
        _discard(part, sidecar)
        raise _MirrorFailed(
            f"delivered {size} bytes but announced {info.total}; the partial file was deleted, "
            "the next run starts over"
        )
    with open(part, "rb") as handle:
        head = handle.read(_SNIFF)
    if not _looks_like_archive(head):
        _discard(part, sidecar)
        raise _MirrorFailed(_not_an_archive_reason(head, info.content_type))
    digest = sha256_of(part)
    if expected is not None and digest != expected:
        _discard(part, sidecar)
        raise _MirrorFailed(
            f"checksum mismatch: expected sha256 {expected}, got {digest}; the downloaded file "
            "was deleted because resuming it would only repeat the mismatch"
        )
    _move_into_place(part, dest)
    sidecar.unlink(missing_ok=True)
    return Fetched(path=dest, url=url, sha256=digest, size=size)


def _looks_like_archive(head: bytes) -> bool:
    """True when the first bytes are those of a zip, gzip, bzip2, xz or tar file."""
    return (
        head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00"))
        or head[257:262] == b"ustar"
    )


def _not_an_archive_reason(head: bytes, content_type: str | None) -> str:
    """Describe what the mirror sent instead of an archive."""
    shown_type = content_type or "no Content-Type"
    text = head.lstrip().lower()
    # Error and login pages are the usual culprit; they are text/* or at least start with '<'.
    if (content_type or "").lower().startswith("text/") or text.startswith(b"<"):
        return f"answered an HTML/text page, not an archive (Content-Type: {shown_type})"
    return (
        "answered a file that is not a zip, tar, gzip, bzip2 or xz archive "
        f"(Content-Type: {shown_type}, starts with {head[:8]!r})"
    )


def _move_into_place(part: Path, dest: Path) -> None:
    """Put the finished part at `dest` atomically (gan.fsio): a rename where both are on one
    file system, a copy where they are not; `dest` is never half-written either way."""
    with atomic_path(dest) as temporary:
        try:
            os.replace(part, temporary)
        except OSError as err:
            if err.errno != errno.EXDEV:
                raise
            shutil.copyfile(part, temporary)
    part.unlink(missing_ok=True)


def _validator(headers: http.client.HTTPMessage) -> str | None:
    """The header to send back as If-Range: a strong ETag, else Last-Modified."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):  # weak ETags are not allowed in If-Range
        return etag
    return headers.get("Last-Modified")


def _content_length(headers: http.client.HTTPMessage) -> int | None:
    value = headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """(start, total) from 'bytes START-END/TOTAL'; None for parts that are missing or '*'."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value or "")
    if not match:
        return None, None
    total = None if match.group(2) == "*" else int(match.group(2))
    return int(match.group(1)), total


def _load_sidecar(sidecar: Path, url: str) -> _PartInfo | None:
    """Read the sidecar; None when missing, unreadable or written for another URL."""
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("url") != url:
        return None
    total = data.get("total")
    return _PartInfo(
        url=url,
        validator=data.get("validator") or None,
        total=total if isinstance(total, int) else None,
        content_type=data.get("content_type"),
    )


def _save_sidecar(sidecar: Path, info: _PartInfo) -> None:
    payload = {"url": info.url, "validator": info.validator, "total": info.total, "content_type": info.content_type}
    write_text(sidecar, json.dumps(payload, indent=1))  # never a corrupt sidecar after a crash


def _discard(part: Path, sidecar: Path) -> None:
    part.unlink(missing_ok=True)
    sidecar.unlink(missing_ok=True)


def _human_bytes(n: int) -> str:
    """1234567 -> '1.2 MB' (decimal units, as in the error messages)."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000:
            break
    return f"{value:.1f} {unit}"


def _all_failed_message(failures: list[tuple[str, str]]) -> str:
    """One message listing each mirror and what it answered, then the local-copy advice."""
    count = len(failures)
    lines = [f"Could not download the dataset archive from any of the {count} mirror{'s' if count != 1 else ''}:"]
    lines += [f"  - {url}: {reason}" for url, reason in failures]
    lines.append(_LOCAL_COPY_ADVICE)
    return "\n".join(lines)
