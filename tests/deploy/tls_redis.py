"""A private redis-server that speaks only TLS and wants a password, with its own CA."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from receiver.testing.redis_server import free_port


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _alt_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_certificates(
    directory: Path, names: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for `names` (host names or IPs)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("tiktok-webhooks test CA"))
        .issuer_name(_name("tiktok-webhooks test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([_alt_name(name) for name in names]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = (
        directory / "ca.pem",
        directory / "redis.pem",
        directory / "redis.key",
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, key)
    return ca_path, cert_path, key_path


class TlsRedisServer:
    def __init__(
        self,
        workdir: Path,
        password: str,
        names: tuple[str, ...] = ("localhost", "127.0.0.1"),
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.binary = binary
        self.workdir = workdir
        self.password = password
        self.port = free_port()
        self.ca, self.cert, self.key = make_certificates(workdir / "tls", names)
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, **query: str) -> str:
        tail = "&".join(f"{name}={value}" for name, value in query.items())
        return f"rediss://:{self.password}@localhost:{self.port}/0" + (f"?{tail}" if tail else "")

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", "0",
                "--tls-port", str(self.port),
                "--bind", "127.0.0.1",
                "--tls-cert-file", str(self.cert),
                "--tls-key-file", str(self.key),
                "--tls-ca-cert-file", str(self.ca),
                "--tls-auth-clients", "no",
                "--requirepass", self.password,
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                "--logfile", str(self.workdir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        context = ssl.create_default_context(cafile=str(self.ca))
        context.check_hostname = False  # the certificate may name another host on purpose
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.workdir / 'redis.log'}")
            try:
                with (
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw,
                    context.wrap_socket(raw, server_hostname="localhost") as conn,
                ):
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64).startswith(b"-NOAUTH"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"TLS redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
