"""Knowing fast whether TFDS could download a dataset, and what the errors mean.

TFDS retries an unreachable host for minutes before it fails; jaxsoft tries a
TCP connection to each download host first, all at once, for at most
`CONNECT_TIMEOUT_S` seconds, and says which files ``manual_dir`` would need.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.parse
from pathlib import Path
from typing import Any

import tensorflow_datasets as tfds

from jaxsoft.data.errors import DatasetUnavailableError, one_line

# Seconds to wait, for all download hosts at once (name lookup and TCP
# connection), when checking that downloads can work.
CONNECT_TIMEOUT_S = 2.0

OFFLINE_OPTIONS = (
    "Offline options: jaxsoft.data.load('digits') (ships with scikit-learn, "
    "needs no network), or download the original files elsewhere and pass "
    "manual_dir=<folder holding them>{files}, or pass data_dir=<folder where "
    "the dataset is already prepared>."
)


def _network_errors() -> tuple[type[BaseException], ...]:
    import requests

    return (
        tfds.download.DownloadError,
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        urllib.error.URLError,
        ConnectionError,
        TimeoutError,
        socket.gaierror,
    )


# What TFDS's download raises when the network fails.
NETWORK_ERRORS = _network_errors()


def url_infos(builder: tfds.core.DatasetBuilder) -> dict[str, Any]:
    """The URLs TFDS will download for ``builder`` (its checksum list)."""
    try:
        return dict(builder.url_infos or {})
    except Exception:
        return {}


def source_files(builder: tfds.core.DatasetBuilder) -> str:
    """`` (a.gz, b.gz)``: the files TFDS downloads, for messages; or ``""``."""
    names = sorted({i.filename for i in url_infos(builder).values() if i.filename})
    return f" ({', '.join(names)})" if names else ""


def check_reachable(
    builder: tfds.core.DatasetBuilder, name: str, manual_dir: Path | None, files: str
) -> None:
    """Fails fast (about `CONNECT_TIMEOUT_S`, not TFDS's minutes of retries).

    Tries a TCP connection to each host that TFDS would download from, for
    the files not in ``manual_dir``, all at once; a failed name lookup fails
    at once. Skipped behind a proxy, or when TFDS has no checksum list (then
    TFDS's own download error is translated).

    Raises:
      DatasetUnavailableError: a host is unreachable; the message says which
        files ``manual_dir`` lacks, or the offline options.
    """
    import requests

    infos = url_infos(builder)
    expected = sorted({i.filename for i in infos.values() if i.filename})
    present = sorted(
        f for f in expected if manual_dir is not None and (manual_dir / f).is_file()
    )
    hosts = set()
    for url, info in infos.items():
        if info.filename in present:
            continue
        if requests.utils.get_environ_proxies(url):
            return
        parsed = urllib.parse.urlsplit(url)
        if parsed.hostname:
            default = 443 if parsed.scheme == "https" else 80
            hosts.add((parsed.hostname, parsed.port or default))
    failures = unreachable(sorted(hosts), CONNECT_TIMEOUT_S)
    if not failures:
        return
    (host, port), error = failures[0]
    why = f"{host}:{port} is unreachable (no network?): {one_line(error)}"
    if manual_dir is not None and expected:
        message = _manual_dir_lacks(name, manual_dir, expected, present, why)
    else:
        message = (
            f"{name!r} is not prepared in {builder.data_dir_root} and cannot be "
            f"downloaded: {why}. " + OFFLINE_OPTIONS.format(files=files)
        )
    raise DatasetUnavailableError(message) from error


def _manual_dir_lacks(
    name: str, manual_dir: Path, expected: list[str], present: list[str], why: str
) -> str:
    if not present:
        return (
            f"manual_dir {manual_dir} holds none of the files of {name!r}: "
            f"{', '.join(expected)}; and they cannot be downloaded: {why}. "
            "Put them in that folder under exactly these names, or pass "
            "the folder that holds them."
        )
    missing = [f for f in expected if f not in present]
    return (
        f"manual_dir {manual_dir} lacks {len(missing)} of the "
        f"{len(expected)} files of {name!r}: {', '.join(missing)} (it "
        f"holds {', '.join(present)}); and they cannot be downloaded: "
        f"{why}. Put them in that folder under exactly these names."
    )


def unreachable(
    hosts: list[tuple[str, int]], timeout: float
) -> list[tuple[tuple[str, int], BaseException]]:
    """The hosts that take no TCP connection within ``timeout`` s, with why.

    All hosts are tried at once, each in a daemon thread, so a name lookup
    that hangs (it has no timeout of its own) costs ``timeout`` and never
    keeps the interpreter from exiting.
    """
    results: dict[tuple[str, int], BaseException | None] = {}

    def probe(address: tuple[str, int]) -> None:
        try:
            with socket.create_connection(address, timeout=timeout):
                pass
        except OSError as e:
            results[address] = e
        else:
            results[address] = None

    threads = [
        threading.Thread(
            target=probe, args=(address,), name="jaxsoft-probe", daemon=True
        )
        for address in hosts
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    failures = []
    for address in hosts:
        if address not in results:
            failures.append(
                (address, TimeoutError(f"no connection within {timeout:g} s"))
            )
        elif results[address] is not None:
            failures.append((address, results[address]))
    return failures
