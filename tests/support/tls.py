"""A throwaway certificate authority for the TLS tests, made with Debian's `openssl`.

Two CAs: `ca` signs the servers' certificate (for `localhost` and 127.0.0.1) and the worker's
client certificate; `stranger` signs a certificate nobody trusts, for the refusal tests.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_ca: Path
    stranger_cert: Path
    stranger_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "2", "-subj", f"/CN=journey5a test {name}", cwd=directory)
    return cert, key


def _signed(directory: Path, name: str, ca: tuple[Path, Path], subject: str, san: str | None) -> tuple[Path, Path]:
    cert, key, csr = directory / f"{name}.crt", directory / f"{name}.key", directory / f"{name}.csr"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", subject,
             cwd=directory)
    extensions = directory / f"{name}.ext"
    extensions.write_text((f"subjectAltName={san}\n" if san else "") + "basicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-out", str(cert), "-days", "2", "-extfile", str(extensions), cwd=directory)
    key.chmod(0o600)
    return cert, key


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory, "ca")
    stranger = _ca(directory, "stranger-ca")
    server = _signed(directory, "server", ca, "/CN=localhost", "DNS:localhost,IP:127.0.0.1")
    client = _signed(directory, "worker", ca, "/CN=journey-worker", None)
    stranger_client = _signed(directory, "stranger", stranger, "/CN=stranger", None)
    return Pki(ca[0], *server, *client, stranger[0], *stranger_client)
