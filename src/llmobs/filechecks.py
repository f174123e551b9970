"""Checks of the files a configuration names: readable, and of the right kind, before start-up opens them.

The config models can only check the shape of a path; whether the file is there, readable and of the right
kind is only known on the machine that runs llmobs. These checks run under `--check-config` and again at
start-up, so both report what start-up would trip over — one line per problem, naming the config key —
instead of a component failing later with a traceback. Each returns a list of problems (empty when fine).
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from pathlib import Path

from llmobs._yaml import YamlError, load_yaml_text

SQLITE_HEADER = b"SQLite format 3\x00"


def _readable(key: str, path: Path) -> tuple[bytes | None, str | None]:
    try:
        return path.read_bytes(), None
    except IsADirectoryError:
        return None, f"{key}: {path} is a directory, not a file"
    except OSError as exc:
        return None, f"{key}: cannot read {path}: {exc.strerror or exc}"


def _ssl_reason(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc.strerror or exc).replace("_", " ").lower()


def tls_problems(section: str, cert_file: Path | None, key_file: Path | None, ca_file: Path | None) -> list[str]:
    """Certificate, key and CA bundle readable, PEM, and the key matching the certificate (stdlib ssl)."""
    problems: list[str] = []
    cert_ok = key_ok = False
    if cert_file is not None:
        data, problem = _readable(f"{section}.cert_file", cert_file)
        if problem:
            problems.append(problem)
        elif data is not None and b"-----BEGIN CERTIFICATE-----" not in data:
            problems.append(f"{section}.cert_file: {cert_file} holds no PEM certificate")
        else:
            cert_ok = True
    if key_file is not None:
        data, problem = _readable(f"{section}.key_file", key_file)
        if problem:
            problems.append(problem)
        elif data is not None and b"PRIVATE KEY-----" not in data:
            problems.append(f"{section}.key_file: {key_file} holds no PEM private key")
        else:
            key_ok = True
    if cert_ok and key_ok:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            # a password callback, so an encrypted key fails here instead of prompting on the terminal
            context.load_cert_chain(str(cert_file), str(key_file), password=lambda: b"")
        except ssl.SSLError as exc:
            problems.append(f"{section}: cert_file {cert_file} and key_file {key_file} are not a usable "
                            f"certificate and matching unencrypted key ({_ssl_reason(exc)})")
    if ca_file is not None:
        key = f"{section}.{'client_ca_file' if cert_file else 'ca_file'}"
        _, problem = _readable(key, ca_file)
        if problem:
            problems.append(problem)
        else:
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(ca_file))
            except (ssl.SSLError, ValueError) as exc:
                reason = _ssl_reason(exc) if isinstance(exc, ssl.SSLError) else str(exc)
                problems.append(f"{key}: {ca_file} is not a PEM CA bundle ({reason})")
    return problems


def secret_file_problems(key: str, path: Path, *, may_be_empty: bool) -> list[str]:
    """A password or bearer-token file: a readable UTF-8 file (as the scraper reads it), and for a token not
    empty (an empty token is sent as `Bearer ` and the replica answers 401 every scrape; an empty password
    is a password)."""
    data, problem = _readable(key, path)
    if problem or data is None:
        return [problem] if problem else []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [f"{key}: {path} is not UTF-8 text"]
    if not may_be_empty and not text.strip():
        return [f"{key}: {path} is empty"]
    return []


def db_path_problems(key: str, path: Path) -> list[str]:
    """The store can create or open `path`: SQLite also writes `-wal` and `-shm` files beside it, so the
    directory must be writable, not only the file. Probed by creating (and removing) a file there."""
    if path.is_dir():
        return [f"{key}: {path} is a directory; give a file path such as {path / 'feedback.db'}"]
    if path.exists():
        try:
            with path.open("rb") as f:
                head = f.read(len(SQLITE_HEADER))
        except OSError as exc:
            return [f"{key}: cannot read {path}: {exc.strerror or exc}"]
        if head and head != SQLITE_HEADER[: len(head)]:
            return [f"{key}: {path} exists and is not a SQLite database"]
    # the store creates missing parent directories; the nearest existing one must take new files
    directory = path.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    if not directory.is_dir():
        return [f"{key}: cannot create {path}: {directory} is not a directory"]
    try:
        fd, probe = tempfile.mkstemp(prefix=".llmobs-probe-", dir=directory)
    except OSError as exc:
        return [f"{key}: cannot create files in {directory}: {exc.strerror or exc}"]
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return []


def kubeconfig_problems(section: str, path: Path) -> list[str]:
    """A kubeconfig the config names explicitly: readable, and a mapping with clusters (what load_kube_config
    needs; a malformed file made the kubernetes client fail with a TypeError)."""
    key = f"{section}.kubeconfig"
    data, problem = _readable(key, path.expanduser())
    if problem or data is None:
        return [problem or f"{key}: cannot read {path}"]
    try:
        doc = load_yaml_text(data, f"kubeconfig {path}")
    except YamlError as exc:
        return [f"{key}: {exc}"]
    if not isinstance(doc, dict) or not isinstance(doc.get("clusters"), list) or not doc["clusters"]:
        return [f"{key}: {path} is not a kubeconfig (no clusters list)"]
    return []
