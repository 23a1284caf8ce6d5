"""Every on/off variable reads the same way, in the resources and in the automation settings."""

import pytest

from lake_assets.automation import AutomationSettings
from lake_assets.env import flag
from lake_assets.resources.lake import lake_resource_from_env


@pytest.mark.parametrize(
    "value, expected",
    [("1", True), ("true", True), ("YES", True), ("on", True), ("0", False), ("off", False), ("No", False), ("", False)],
)
def test_a_flag_is_on_or_off_by_one_rule(value, expected):
    assert flag("LAKE_X", environ={"LAKE_X": value}) is expected


def test_an_unknown_value_is_refused_in_one_line_naming_the_variable_wherever_it_is_read(monkeypatch):
    with pytest.raises(ValueError, match=r"^LAKE_AUTOMATION='enabled': not an on/off value"):
        AutomationSettings.from_env({"LAKE_AUTOMATION": "enabled"})
    monkeypatch.setenv("LAKE_S3_PATH_STYLE", "enabled")
    with pytest.raises(ValueError, match=r"^LAKE_S3_PATH_STYLE='enabled': not an on/off value"):
        lake_resource_from_env()
    # The same word means the same in both places.
    monkeypatch.setenv("LAKE_S3_PATH_STYLE", "off")
    assert lake_resource_from_env().s3_path_style is False
    assert AutomationSettings.from_env({"LAKE_AUTOMATION": "off"}).enabled is False
    assert flag("LAKE_UNSET", default=True, environ={}) is True
