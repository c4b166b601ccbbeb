"""Reader profiles: shipped files, warnings that protect portal logic, load errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.llrp.profile import (
    DEFAULT_PROFILES_DIR,
    ReaderProfile,
    ReaderProfileError,
    load_profile,
)

SHIPPED = ["generic", "impinj-r700", "zebra-fx9600"]


def write_profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "custom.toml"
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = """
name = "custom"
vendor = "test"
[[antennas]]
port = 1
[[antennas]]
port = 2
"""


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_loads(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert profile.warnings(profile.ports) == []


def test_shipped_profiles_listed() -> None:
    found = sorted(path.stem for path in DEFAULT_PROFILES_DIR.glob("*.toml"))
    assert found == sorted(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_config_asks_for_portal_fields(name: str) -> None:
    config = load_profile(name).to_sllurp_config()
    selector = config.tag_content_selector
    assert selector["EnableAntennaID"]
    assert selector["EnablePeakRSSI"]
    assert selector["EnableFirstSeenTimestamp"]
    assert selector["EnableLastSeenTimestamp"]
    assert config.reconnect is False
    assert config.keepalive_interval == 5000


def test_impinj_config_has_extensions() -> None:
    config = load_profile("impinj-r700").to_sllurp_config([1, 2])
    assert config.impinj_search_mode == 2
    assert config.impinj_tag_content_selector["EnableRFPhaseAngle"]
    assert config.tx_power_dbm == {1: 30.0, 2: 30.0}
    assert config.mode_identifier == 1000


def test_keepalive_override_in_ms() -> None:
    config = load_profile("generic").to_sllurp_config(keepalive_interval_s=0.2)
    assert config.keepalive_interval == 200


def test_unknown_antenna_raises() -> None:
    with pytest.raises(ReaderProfileError, match=r"\[3\]"):
        load_profile("generic").to_sllurp_config([1, 3])


def test_session2_single_target_warns(tmp_path: Path) -> None:
    path = write_profile(
        tmp_path,
        MINIMAL + '[inventory]\nsession = 2\n[impinj]\nsearch_mode = "single_target"\n',
    )
    warnings = load_profile(path).warnings([1, 2])
    assert len(warnings) == 1
    assert "session 2" in warnings[0]
    assert "single-target" in warnings[0]


def test_session3_default_search_warns(tmp_path: Path) -> None:
    path = write_profile(tmp_path, MINIMAL + "[inventory]\nsession = 3\n")
    warnings = load_profile(path).warnings([1, 2])
    assert len(warnings) == 1
    assert "session 3" in warnings[0]


def test_session2_dual_target_quiet(tmp_path: Path) -> None:
    path = write_profile(
        tmp_path,
        MINIMAL + '[inventory]\nsession = 2\n[impinj]\nsearch_mode = "dual_target"\n',
    )
    assert load_profile(path).warnings([1, 2]) == []


def test_missing_portal_antenna_warns() -> None:
    warnings = load_profile("generic").warnings([1, 2, 4])
    assert len(warnings) == 1
    assert "[4]" in warnings[0]


def test_missing_report_fields_warn(tmp_path: Path) -> None:
    path = write_profile(
        tmp_path,
        MINIMAL
        + "[report]\nantenna_id = false\npeak_rssi = false\n"
        + "first_seen_timestamp = false\nlast_seen_timestamp = false\n",
    )
    warnings = load_profile(path).warnings([1, 2])
    assert len(warnings) == 3
    assert any("antenna id" in text for text in warnings)
    assert any("peak RSSI" in text for text in warnings)
    assert any("UTC timestamps" in text for text in warnings)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ReaderProfileError, match="not found"):
        load_profile(tmp_path / "absent.toml")


def test_unknown_name_raises() -> None:
    with pytest.raises(ReaderProfileError, match="not found"):
        load_profile("no-such-reader")


def test_bad_toml_raises(tmp_path: Path) -> None:
    with pytest.raises(ReaderProfileError, match="not valid TOML"):
        load_profile(write_profile(tmp_path, "name = \n"))


def test_unknown_key_raises(tmp_path: Path) -> None:
    path = write_profile(tmp_path, MINIMAL + "[inventory]\nsesion = 1\n")
    with pytest.raises(ReaderProfileError, match="inventory.sesion"):
        load_profile(path)


def test_session_out_of_range_raises(tmp_path: Path) -> None:
    path = write_profile(tmp_path, MINIMAL + "[inventory]\nsession = 4\n")
    with pytest.raises(ReaderProfileError, match="inventory.session"):
        load_profile(path)


def test_mixed_power_raises(tmp_path: Path) -> None:
    text = (
        'name = "custom"\nvendor = "t"\n[[antennas]]\nport = 1\ntx_power_dbm = 30.0\n'
    )
    text += "[[antennas]]\nport = 2\n"
    with pytest.raises(ReaderProfileError, match="every antenna or on none"):
        load_profile(write_profile(tmp_path, text))


def test_repeated_port_raises(tmp_path: Path) -> None:
    text = 'name = "custom"\nvendor = "t"\n'
    text += "[[antennas]]\nport = 1\n[[antennas]]\nport = 1\n"
    with pytest.raises(ReaderProfileError, match="repeat"):
        load_profile(write_profile(tmp_path, text))


def test_profile_is_frozen() -> None:
    profile: ReaderProfile = load_profile("generic")
    with pytest.raises(ValueError):
        profile.keepalive_interval_s = 1.0  # type: ignore[misc]
