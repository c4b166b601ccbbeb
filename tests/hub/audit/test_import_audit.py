"""`bwms manifest import` writes one manifest.create audit record per manifest."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bwms.cli import app as bwms

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

DATA = Path(__file__).resolve().parent.parent / "data"


def test_import_audited(db_url: str, site_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["--database-url", db_url, "--data-dir", str(tmp_path)]
    imported = runner.invoke(
        bwms,
        [
            "manifest",
            "import",
            str(DATA / "manifests_valid.csv"),
            "--config",
            str(site_file),
            *common,
        ],
    )

    verified = runner.invoke(bwms, ["audit", "verify", *common])

    assert imported.exit_code == 0, imported.output
    assert "OK: 2 audit records" in verified.output
