"""manage.py as a newcomer runs it: from a fresh shell in a development checkout, with no
DJANGO_DEBUG and no secret key in the environment."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

from ingestion.sample import write_sample
from tests.helpers import ROOT


def clean_env(**extra: str) -> dict[str, str]:
    """What a fresh login shell has: a PATH and a HOME, nothing of Intake's."""
    return {"PATH": os.defpath, "HOME": os.environ.get("HOME", "/tmp"), **extra}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_make_sample_works_as_the_readme_writes_it(tmp_path):
    out = tmp_path / "orders.csv"
    result = manage("make_sample", "--rows", "20", "--out", str(out), "--seed", "3", env=clean_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Wrote {out} (0.0 MB, 20 rows, seed 3) in ")
    # The very file the generator writes in-process, and the counts it promises.
    expected = write_sample(tmp_path / "same.csv", rows=20, seed=3, messy=False)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256((tmp_path / "same.csv").read_bytes()).digest()
    assert f"Expected: {expected.valid_rows} valid rows, 0 invalid, 0 warnings;" in result.stdout
    assert (expected.valid_rows, expected.invalid_rows, expected.warnings) == (20, 0, 0)


def test_production_settings_still_demand_a_secret_key():
    result = manage("check", "--deploy", env=clean_env(DJANGO_DEBUG="0"))
    assert result.returncode == 1
    assert "ImproperlyConfigured: Set DJANGO_SECRET_KEY (or DJANGO_DEBUG=1 for a development key)." in result.stderr


def test_a_secret_key_means_production_debug_stays_off():
    code = "from django.conf import settings; print(settings.DEBUG)"
    result = manage("shell", "-v", "0", "-c", code, env=clean_env(DJANGO_SECRET_KEY="k" * 60))
    assert (result.returncode, result.stdout.strip()) == (0, "False"), result.stderr
    result = manage("shell", "-v", "0", "-c", code, env=clean_env())
    assert (result.returncode, result.stdout.strip()) == (0, "True"), result.stderr
