"""Fetching a jar from Maven Central, checked against the SHA-1 Maven publishes beside it."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

import requests

from tracequest.programs.cache import BuildError

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"


def artifact_url(group: str, artifact: str, version: str, classifier: str = "") -> str:
    """Where Maven Central keeps ``group:artifact:version[:classifier]`` (a jar)."""
    tail = f"-{classifier}" if classifier else ""
    return (f"{MAVEN_CENTRAL}/{group.replace('.', '/')}/{artifact}/{version}/"
            f"{artifact}-{version}{tail}.jar")


def download_verified(url: str, target: Path, log=print, timeout: float = 60.0,
                      override: str = "", error: type[BuildError] = BuildError) -> Path:
    """Fetch ``url`` into ``target``, checked against the ``.sha1`` Maven publishes beside it.

    The bytes go to a temporary file beside ``target`` and are renamed into
    place only once their SHA-1 matches, so an interrupted or corrupted
    download never leaves a jar that Java would fail on later. ``override``
    names the variable a learner may set to a jar fetched by hand.
    """
    started = time.monotonic()
    try:
        answer = requests.get(url + ".sha1", timeout=timeout)
        answer.raise_for_status()
        expected = answer.text.split()[0].lower() if answer.text.strip() else ""
        target.parent.mkdir(parents=True, exist_ok=True)
        log(f"downloading {url} into {target} ...")
        digest = hashlib.sha1()
        with requests.get(url, stream=True, timeout=timeout) as body:
            body.raise_for_status()
            with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".download-",
                                             delete=False) as part:
                total = int(body.headers.get("Content-Length") or 0)
                done, shown = 0, 0
                try:
                    for chunk in body.iter_content(chunk_size=1 << 20):
                        part.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if total and done * 4 // total > shown and done < total:
                            shown = done * 4 // total   # a line at each quarter
                            log(f"  {done / 1e6:.0f} of {total / 1e6:.0f} MB")
                except BaseException:
                    part.close()
                    os.unlink(part.name)
                    raise
    except requests.RequestException as exc:
        yourself = f", or download the jar yourself and set {override} to it" if override else ""
        raise error(f"could not download {url}: {exc}. Check the network (or the "
                    f"HTTPS_PROXY setting){yourself}.") from None
    if digest.hexdigest() != expected:
        os.unlink(part.name)
        raise error(f"the download of {url} is damaged: its SHA-1 is "
                    f"{digest.hexdigest()}, Maven Central says {expected or 'nothing'}. "
                    "Run the command again.")
    os.chmod(part.name, 0o644)   # a temporary file starts private
    os.replace(part.name, target)
    size_mb = target.stat().st_size / 1e6
    log(f"fetched {target} ({size_mb:.0f} MB) in {time.monotonic() - started:.1f}s")
    return target
