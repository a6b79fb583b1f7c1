"""Production settings as an operator gets them from the environment: `check --deploy` has
nothing left to say, pages carry a Content-Security-Policy, a wildcard ALLOWED_HOSTS is
warned about, and repeated failed sign-ins are locked out."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.urls import reverse

from tests.helpers import ROOT

PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "k" * 20 + "production-secret-key-of-enough-length-and-variety-0123456789",
    "DJANGO_ALLOWED_HOSTS": "intake.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://intake.example.com",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
}


def manage_check(**env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    environment.update(PRODUCTION, **env)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_has_no_warnings_with_production_environment():
    result = manage_check()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_wildcard_allowed_hosts_is_warned_about():
    result = manage_check(DJANGO_ALLOWED_HOSTS="*")
    assert result.returncode == 1
    assert "(realtime.W001) DJANGO_ALLOWED_HOSTS contains '*', which also disables the websocket's Origin check." in (
        result.stderr
    )


def test_plain_http_production_is_warned_about():
    """DJANGO_HTTPS=0 (a benchmark on loopback) is allowed, and check --deploy says what it costs."""
    result = manage_check(DJANGO_HTTPS="0")
    assert result.returncode == 1
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in result.stderr


@pytest.mark.django_db
def test_pages_carry_the_content_security_policy(client, user, settings):
    client.force_login(user)
    for url in (reverse("login"), reverse("dashboard")):
        policy = client.get(url)["Content-Security-Policy"]
        assert policy == settings.CONTENT_SECURITY_POLICY
        assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy


@pytest.mark.django_db
def test_repeated_failed_sign_ins_are_locked_out(client, user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    statuses = [client.post(reverse("login"), {"username": "alice", "password": "wrong"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]  # the form again twice, then locked
    # Locked: even the right password is refused now, from this address.
    response = client.post(reverse("login"), {"username": "alice", "password": "alice-password-1"})
    assert response.status_code == 429
    assert b"too many" in response.content.lower()
    assert "_auth_user_id" not in client.session
