from datetime import timedelta

import pytest

from bot.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    import os

    for name in list(os.environ):
        if name.startswith(("GPUBOT_", "SLACK_")) or name == "DATABASE_URL":
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = load_settings()
    assert s.database_url == "sqlite:///gpubot.db"
    assert s.ports == (8800, 8899)
    assert s.remind_before == (timedelta(hours=1), timedelta(minutes=10))
    assert s.slack_api_url == "https://slack.com/api/" and not s.socket_mode


def test_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    (tmp_path / ".env").write_text("GPUBOT_MAX_LEASE=3d\nGPUBOT_ADMINS=U1, U2\nSLACK_APP_TOKEN=xapp-1\n")
    monkeypatch.setenv("GPUBOT_REMIND_BEFORE", "10m,2h")
    s = load_settings()
    assert s.max_lease == timedelta(days=3)
    assert s.admins == ("U1", "U2")
    assert s.remind_before == (timedelta(hours=2), timedelta(minutes=10))
    assert s.socket_mode


@pytest.mark.parametrize(("name", "value", "fragment"), [
    ("GPUBOT_PORT_RANGE", "9000-8000", "GPUBOT_PORT_RANGE"),
    ("GPUBOT_PORT_RANGE", "abc", "LOW-HIGH"),
    ("GPUBOT_MAX_LEASE", "banana", "GPUBOT_MAX_LEASE"),
    ("DATABASE_URL", "not a url", "DATABASE_URL"),
    ("GPUBOT_MEM_LIMIT", "lots", "GPUBOT_MEM_LIMIT"),
    ("GPUBOT_FAKE_GPUS", "-1", "GPUBOT_FAKE_GPUS"),
    ("GPUBOT_REMIND_BEFORE", "1h,soon", "GPUBOT_REMIND_BEFORE"),
    ("GPUBOT_MIN_LEASE", "8d", "GPUBOT_MIN_LEASE"),
])
def test_invalid_values_give_one_line_naming_the_setting(monkeypatch, name, value, fragment) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    text = str(err.value)
    assert fragment in text and "\n" not in text and "Traceback" not in text


def test_secrets_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret")
    monkeypatch.setenv("GPUBOT_MIN_LEASE", "8d")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "xoxb-very-secret" not in str(err.value)
    monkeypatch.delenv("GPUBOT_MIN_LEASE")
    assert "xoxb-very-secret" not in repr(load_settings())


def test_every_setting_is_documented_in_env_example() -> None:
    from pathlib import Path

    from bot.settings import Settings

    example = (Path(__file__).parents[2] / ".env.example").read_text()
    documented = {line.lstrip("#").split("=", 1)[0].strip() for line in example.splitlines()
                  if "=" in line and not line.startswith("# ")}
    assert {f.alias for f in Settings.model_fields.values()} <= documented
