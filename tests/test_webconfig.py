"""--web.config.file: TLS, client certificates and basic auth on a real listener on loopback,
and rotation of certificates and passwords without a restart."""

from __future__ import annotations

import base64
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
import trustme
import yaml
from aiohttp import web

from exporter.config import parse_config
from exporter.options import Options
from exporter.server import create_app
from exporter.webconfig import WebConfigError, WebSecurity, load_web_config
from tests.helpers import free_port

PASSWORD = "s3cret-scrape"
CONFIG = parse_config("unipost: {api_key: up_test_web}\naccounts: [{id: sa_instagram_1}]", {})


def bcrypt_hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


class Pki:
    """A trusted CA with a server and a client certificate, and a stranger's client cert."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ca = trustme.CA()
        self.server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.client = self.ca.issue_cert("scraper.example")
        self.stranger = trustme.CA().issue_cert("scraper.example")
        self.ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
        self.write_server(self.server)

    def write_server(self, cert: trustme.LeafCert) -> None:
        cert.cert_chain_pems[0].write_to_path(str(self.tmp / "server.crt"))
        cert.private_key_pem.write_to_path(str(self.tmp / "server.key"))

    def client_context(self, cert: trustme.LeafCert | None, ca: trustme.CA | None = None) -> Any:
        ctx = ssl.create_default_context()
        (ca or self.ca).configure_trust(ctx)
        if cert is not None:
            cert.configure_cert(ctx)
        return ctx


def write(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


@contextlib.asynccontextmanager
async def serving(security: WebSecurity) -> AsyncIterator[str]:
    """The exporter app behind `security`, as process.serve runs it; yields its base URL."""
    app = create_app(CONFIG, Options(security=security))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    ssl_context = security.server_ssl_context()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
    try:
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def get(url: str, ssl_ctx: Any = None, auth: tuple[str, str] | None = None) -> int:
    """The status of a GET, or 0 when the TLS handshake or connection failed."""
    headers = {}
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, ssl=ssl_ctx if ssl_ctx is not None else True, headers=headers) as r,
        ):
            await r.read()
            return r.status
    except (aiohttp.ClientConnectionError, ssl.SSLError):
        return 0


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "problems"),
    [
        (
            {"tls_server_config": {"cert_file": "a"}, "extra": 1},
            ["extra: unknown key", "tls_server_config.key_file: is required"],
        ),
        (
            {"tls_server_config": {"cert_file": "a", "key_file": "b", "cipher_suites": ["x"]}},
            [
                "tls_server_config.cipher_suites: is not supported (Python's ssl module uses "
                "OpenSSL's defaults)"
            ],
        ),
        (
            {"tls_server_config": {"key_file": "b", "client_auth_type": "Sometimes"}},
            [
                "tls_server_config.cert_file: is required",
                "tls_server_config.client_auth_type: 'Sometimes' is not one of NoClientCert, "
                "VerifyClientCertIfGiven, RequireAndVerifyClientCert",
            ],
        ),
        (
            {
                "tls_server_config": {
                    "cert_file": "a",
                    "key_file": "b",
                    "client_auth_type": "RequireAnyClientCert",
                }
            },
            [
                "tls_server_config.client_auth_type: RequireAnyClientCert is not supported: "
                "Python's ssl module verifies every client certificate it asks for; use "
                "VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file",
            ],
        ),
        (
            {
                "tls_server_config": {
                    "cert_file": "a",
                    "key_file": "b",
                    "client_auth_type": "RequestClientCert",
                }
            },
            [
                "tls_server_config.client_auth_type: RequestClientCert is not supported: "
                "Python's ssl module verifies every client certificate it asks for; use "
                "VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file",
            ],
        ),
        (
            {
                "tls_server_config": {
                    "cert_file": "a",
                    "key_file": "b",
                    "client_auth_type": "RequireAndVerifyClientCert",
                    "min_version": "TLS13",
                    "max_version": "TLS12",
                }
            },
            [
                "tls_server_config.client_ca_file: is required for RequireAndVerifyClientCert",
                "tls_server_config.max_version: is lower than min_version",
            ],
        ),
        (
            {"basic_auth_users": {"alice": "plaintext-password"}},
            ['basic_auth_users.alice: is not a bcrypt hash (htpasswd -nBC 10 "" ...)'],
        ),
        (
            {"http_server_config": {"http2": "yes", "headers": {"Server": "x"}}},
            [
                "http_server_config.http2: must be true or false",
                "http_server_config.headers.Server: is not one of Strict-Transport-Security, "
                "X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, "
                "Content-Security-Policy",
            ],
        ),
    ],
)
def test_bad_web_configs_name_every_problem(
    tmp_path: Path, raw: dict[str, Any], problems: list[str]
) -> None:
    with pytest.raises(WebConfigError) as caught:
        load_web_config(write(tmp_path / "web.yml", raw))
    assert caught.value.problems == problems
    assert "plaintext-password" not in str(caught.value)


def test_a_certificate_that_does_not_load_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "bad.crt").write_text("not a certificate")
    (tmp_path / "bad.key").write_text("not a key")
    path = write(
        tmp_path / "web.yml", {"tls_server_config": {"cert_file": "bad.crt", "key_file": "bad.key"}}
    )
    with pytest.raises(WebConfigError, match="tls_server_config: cannot load"):
        WebSecurity(str(path))


# -- TLS ----------------------------------------------------------------------------------------


async def test_tls_serves_https_only_with_the_minimum_version(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    path = write(
        tmp_path / "web.yml",
        {
            "tls_server_config": {
                "cert_file": "server.crt",
                "key_file": "server.key",
                "min_version": "TLS13",
            }
        },
    )
    async with serving(WebSecurity(str(path))) as url:
        assert await get(f"{url}/metrics", pki.client_context(None)) == 200
        assert await get(url.replace("https", "http") + "/metrics") == 0
        old = pki.client_context(None)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        assert await get(f"{url}/metrics", old) == 0


# Who gets in, per client_auth_type: no certificate, one from the trusted CA, a stranger's.
AUTH_MATRIX = {
    "NoClientCert": (200, 200, 200),
    "VerifyClientCertIfGiven": (200, 200, 0),
    "RequireAndVerifyClientCert": (0, 200, 0),
}


@pytest.mark.parametrize("auth_type", list(AUTH_MATRIX))
async def test_client_auth_types_admit_whom_go_would(tmp_path: Path, auth_type: str) -> None:
    pki = Pki(tmp_path)
    tls: dict[str, Any] = {
        "cert_file": "server.crt",
        "key_file": "server.key",
        "client_auth_type": auth_type,
    }
    if auth_type != "NoClientCert":
        tls["client_ca_file"] = "ca.pem"
    path = write(tmp_path / "web.yml", {"tls_server_config": tls})
    async with serving(WebSecurity(str(path))) as url:
        got = tuple(
            [
                await get(f"{url}/metrics", pki.client_context(cert))
                for cert in (None, pki.client, pki.stranger)
            ]
        )
    assert got == AUTH_MATRIX[auth_type]


async def test_client_allowed_sans_limit_verified_clients(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    other = pki.ca.issue_cert("someone-else.example")
    path = write(
        tmp_path / "web.yml",
        {
            "tls_server_config": {
                "cert_file": "server.crt",
                "key_file": "server.key",
                "client_auth_type": "RequireAndVerifyClientCert",
                "client_ca_file": "ca.pem",
                "client_allowed_sans": ["scraper.example"],
            }
        },
    )
    async with serving(WebSecurity(str(path))) as url:
        assert await get(f"{url}/metrics", pki.client_context(pki.client)) == 200
        assert await get(f"{url}/metrics", pki.client_context(other)) == 403


async def test_certificates_rotate_without_a_restart(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    path = write(
        tmp_path / "web.yml",
        {"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"}},
    )
    async with serving(WebSecurity(str(path))) as url:
        assert await get(f"{url}/-/healthy", pki.client_context(None)) == 200
        new_ca = trustme.CA()
        pki.write_server(new_ca.issue_cert("127.0.0.1"))
        # New connections present the new certificate: trusted by the new CA only.
        assert await get(f"{url}/-/healthy", pki.client_context(None, new_ca)) == 200
        assert await get(f"{url}/-/healthy", pki.client_context(None)) == 0
        # A broken key file keeps the last good certificate in use.
        (tmp_path / "server.key").write_text("garbage")
        assert await get(f"{url}/-/healthy", pki.client_context(None, new_ca)) == 200


# -- basic auth ---------------------------------------------------------------------------------


async def test_basic_auth_guards_everything_but_healthy(tmp_path: Path) -> None:
    path = write(tmp_path / "web.yml", {"basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD)}})
    async with serving(WebSecurity(str(path))) as url, aiohttp.ClientSession() as session:
        for endpoint in ("/metrics", "/", "/-/ready"):
            async with session.get(url + endpoint) as r:
                assert (r.status, r.headers.get("WWW-Authenticate")) == (401, "Basic")
            assert await get(url + endpoint, auth=("prometheus", PASSWORD)) == 200
        async with session.post(url + "/-/reload") as r:
            assert r.status == 401
        assert await get(url + "/-/healthy") == 200
        assert await get(url + "/metrics", auth=("prometheus", "wrong")) == 401
        assert await get(url + "/metrics", auth=("nobody", PASSWORD)) == 401
        # After a success, a wrong password is still refused (no cache lets it through),
        # and so is the stored hash sent as the password.
        assert await get(url + "/metrics", auth=("prometheus", PASSWORD)) == 200
        assert await get(url + "/metrics", auth=("prometheus", PASSWORD + "x")) == 401
        stored = yaml.safe_load(path.read_text())["basic_auth_users"]["prometheus"]
        assert await get(url + "/metrics", auth=("prometheus", stored)) == 401
        assert await get(url + "/metrics", auth=("prometheus", "x" * 100)) == 401
        token = base64.b64encode(b"no-colon").decode()
        async with session.get(url + "/metrics", headers={"Authorization": f"Basic {token}"}) as r:
            assert r.status == 401


async def test_unknown_users_cost_the_same_bcrypt_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "web.yml", {"basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD)}})
    checked: list[bytes] = []
    real = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", spy)
    async with serving(WebSecurity(str(path))) as url:
        assert await get(url + "/metrics", auth=("nobody", PASSWORD)) == 401
        assert await get(url + "/metrics", auth=("prometheus", "wrong")) == 401
    # One bcrypt check each, at the same cost: timing does not say which users exist.
    assert len(checked) == 2
    assert checked[0][:7] == checked[1][:7] == b"$2b$04$"
    assert checked[0] != checked[1]


async def test_passwords_and_headers_rotate_without_a_restart(tmp_path: Path) -> None:
    path = write(tmp_path / "web.yml", {"basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD)}})
    async with serving(WebSecurity(str(path))) as url:
        assert await get(url + "/metrics", auth=("prometheus", PASSWORD)) == 200
        write(
            path,
            {
                "basic_auth_users": {"prometheus": bcrypt_hash("rotated")},
                "http_server_config": {"headers": {"X-Frame-Options": "deny"}},
            },
        )
        assert await get(url + "/metrics", auth=("prometheus", PASSWORD)) == 401
        assert await get(url + "/metrics", auth=("prometheus", "rotated")) == 200
        async with aiohttp.ClientSession() as session, session.get(url + "/-/healthy") as r:
            assert r.headers["X-Frame-Options"] == "deny"
        # A broken file keeps the last good users.
        path.write_text("basic_auth_users: [")
        assert await get(url + "/metrics", auth=("prometheus", "rotated")) == 200
