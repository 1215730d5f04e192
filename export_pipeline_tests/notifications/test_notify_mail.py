"""Mail through servers that want a login, and STARTTLS with a certificate the client
must verify; the password may come from the environment without Dagster showing it."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from export_pipeline.defs.notifications import notifications_definitions
from export_pipeline_tests.notifications.conftest import REQUESTER_EMAIL
from export_pipeline_tests.notifications.notify_receivers import MailServer


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate for the STARTTLS test")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


PLAIN_LOGIN = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
"""aiosmtpd warns about a login without TLS, which these tests want on loopback."""


@PLAIN_LOGIN
def test_mail_logs_in_when_the_server_asks(make_product) -> None:
    with MailServer(login=("mailer", "right-password")) as server:
        product = make_product(
            smtp_host="127.0.0.1",
            smtp_port=server.port,
            smtp_username="mailer",
            smtp_password="right-password",
        )
        export_id, _ = product.request()
        product.run(export_id)
        product.deliver()

    (mail,) = server.mails
    assert mail.recipients == [REQUESTER_EMAIL]
    (notification,) = product.notifications(export_id)
    assert notification.delivered_at is not None


@PLAIN_LOGIN
def test_a_refused_login_is_recorded_and_retried(make_product) -> None:
    with MailServer(login=("mailer", "right-password")) as server:
        product = make_product(
            smtp_host="127.0.0.1",
            smtp_port=server.port,
            smtp_username="mailer",
            smtp_password="wrong-password",
        )
        export_id, _ = product.request()
        product.run(export_id)
        product.deliver()

    assert server.mails == []
    (notification,) = product.notifications(export_id)
    assert notification.delivered_at is None
    assert notification.given_up_at is None
    assert notification.next_attempt_at is not None
    assert notification.last_error.startswith("the mail server answered 535")
    assert "wrong-password" not in notification.last_error


def test_mail_goes_over_starttls_with_a_password_from_the_environment(
    make_product, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    # The client verifies the server's certificate against the trust store that
    # OpenSSL reads from SSL_CERT_FILE: here, the self-signed one.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setenv("EXPORT_PIPELINE_SMTP_PASSWORD", "tls-password")

    with MailServer(login=("mailer", "tls-password"), tls_context=server_tls) as server:
        product = make_product(
            smtp_host="127.0.0.1",
            smtp_port=server.port,
            smtp_starttls=True,
            smtp_username="mailer",
            smtp_password="tls-password",
        )
        export_id, _ = product.request()
        product.run(export_id)
        product.deliver()

    (mail,) = server.mails
    assert mail.recipients == [REQUESTER_EMAIL]
    notifier = notifications_definitions(product.settings).resources["notifier"]
    assert isinstance(notifier.smtp_password, dg.EnvVar)
    assert notifier.smtp_password == "EXPORT_PIPELINE_SMTP_PASSWORD"
