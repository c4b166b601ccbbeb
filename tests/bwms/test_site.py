"""Loading the site file: the demo site, encodings, and readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bwms.site import Side, SiteError, configs_dir, load_site

DEMO = configs_dir() / "sites" / "demo.toml"


def test_demo_site_loads() -> None:
    site = load_site(DEMO)

    assert site.site.id == "demo-wgq"
    assert site.portal("door-3").side_of(2) is Side.OUTSIDE
    assert site.portal("door-3").side_of(9) is None


def test_byte_order_mark_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + DEMO.read_bytes())

    assert load_site(path).site.id == "demo-wgq"


def test_non_utf8_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "gbk.toml"
    path.write_bytes('[site]\nid = "x"\nname = "保税仓"\n'.encode("gbk"))

    with pytest.raises(SiteError) as caught:
        load_site(path)
    assert str(caught.value) == (
        f"site file {path} is not UTF-8 text (invalid byte at offset 24); save it as UTF-8"
    )


def test_typos_listed_by_path(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    text = DEMO.read_text().replace('kind = "dock_door"', 'kind = "dockdoor"', 1)
    path.write_text(text.replace("rssi_floor_dbm", "rssi_flor_dbm", 1))

    with pytest.raises(SiteError) as caught:
        load_site(path)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"site file {path} is invalid:"
    assert "  portals[0].kind: Input should be 'dock_door' or 'gate'" in lines
    assert "  portals[0].tuning.rssi_flor_dbm: Extra inputs are not permitted" in lines


def test_one_sided_portal_rejected(tmp_path: Path) -> None:
    path = tmp_path / "one-sided.toml"
    path.write_text(
        DEMO.read_text().replace('{ port = 2, side = "outside" }', '{ port = 2, side = "inside" }', 1)
    )

    with pytest.raises(SiteError) as caught:
        load_site(path)
    assert "needs antennas on both sides" in str(caught.value)


def test_unknown_portal_named(tmp_path: Path) -> None:
    with pytest.raises(SiteError) as caught:
        load_site(DEMO).portal("door-99")
    assert str(caught.value) == (
        "site demo-wgq has no portal 'door-99' (known: door-3, door-4, gate-1)"
    )


def test_missing_file_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"

    with pytest.raises(SiteError) as caught:
        load_site(path)
    assert str(caught.value) == f"cannot read site file {path}: No such file or directory"
