"""Secrets at rest (issue 11.12): `gpubot secrets rotate`, where the key file may live,
and key files others can read. Real SQLite file, the real CLI in process.

The attacker in these tests holds a copy of an old key (a backup, a leaked .env), or is
another user on the host who can read a key file left open."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from bot.bootstrap import StartupError, make_vault
from bot.cli import app
from bot.db.engine import Database
from bot.db.repo import LeaseRepo
from bot.security import SecretKeyError, Vault, load_or_create_key_file
from bot.settings import Settings
from tests.fakes.services import TEST_KEY, build_harness

runner = CliRunner()
PG_URL = "postgresql+psycopg://gpubot@db.lab.example/gpubot"  # never connected to


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from bot.db import migrate

    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/gpubot.db"
    monkeypatch.setenv("DATABASE_URL", url)
    migrate.upgrade(url)
    database = Database(url)
    yield database
    database.dispose()


def tokens(db: Database) -> dict[int, str]:
    with db.transaction() as session:
        return dict(LeaseRepo(session).password_tokens())


def test_rotate_leaves_a_stolen_old_key_useless(db: Database,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    kit = build_harness(db)  # encrypts under TEST_KEY: the old key
    leases = [kit.claims.claim(user_id=user, duration=timedelta(hours=2))
              for user in ("U0BOB00002", "U0CAROL003")]
    for lease in leases:
        kit.claims.start(lease.id or 0)
    old = Vault([TEST_KEY])
    before = {i: old.decrypt(t) for i, t in tokens(db).items()}
    assert sorted(before) == [lease.id for lease in leases]

    new_key = Fernet.generate_key().decode()
    monkeypatch.setenv("GPUBOT_SECRET_KEY", f"{new_key},{TEST_KEY}")  # newest first
    result = runner.invoke(app, ["secrets", "rotate"])
    assert result.exit_code == 0, result.output
    assert "2 stored password(s)" in result.output

    after = tokens(db)
    assert {i: Vault([new_key]).decrypt(t) for i, t in after.items()} == before
    for token in after.values():  # the attacker's copy of the old key
        with pytest.raises(SecretKeyError):
            old.decrypt(token)
    # and the bot, once the old key is dropped, still re-sends passwords
    assert Vault([new_key]).decrypt(after[leases[0].id or 0]) == before[leases[0].id or 0]


def test_rotate_names_passwords_no_configured_key_decrypts(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    kit = build_harness(db)
    lease = kit.claims.claim(user_id="U0BOB00002", duration=timedelta(hours=2))
    stored = tokens(db)
    monkeypatch.setenv("GPUBOT_SECRET_KEY", Fernet.generate_key().decode())  # old key gone
    result = runner.invoke(app, ["secrets", "rotate"])
    assert result.exit_code == 1
    assert f"lease(s) {lease.id}" in result.output and "GPUBOT_SECRET_KEY" in result.output
    assert tokens(db) == stored, "left as it was"


def test_replace_password_token_does_not_resurrect_a_cleared_one(db: Database) -> None:
    kit = build_harness(db)
    lease = kit.claims.claim(user_id="U0BOB00002", duration=timedelta(hours=2))
    token = tokens(db)[lease.id or 0]
    with db.transaction() as session:  # the lease ended meanwhile: its secret was cleared
        repo = LeaseRepo(session)
        repo.get(lease.id or 0).password_token = None
    with db.transaction() as session:
        assert not LeaseRepo(session).replace_password_token(lease.id or 0, old=token,
                                                             new="rotated")
    assert tokens(db) == {}


# ---------------------------------------------------------------- where the key lives
def test_a_server_database_without_a_key_setting_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # wherever the bot happened to be started
    with pytest.raises(StartupError, match="GPUBOT_SECRET_KEY .* or GPUBOT_KEY_FILE"):
        make_vault(Settings(DATABASE_URL=PG_URL))
    assert list(tmp_path.iterdir()) == [], "no key file made in the working directory"

    key_file = tmp_path / "etc" / "gpubot.key"
    vault = make_vault(Settings(DATABASE_URL=PG_URL, GPUBOT_KEY_FILE=str(key_file)))
    assert vault.decrypt(vault.encrypt("x")) == "x"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = Fernet.generate_key().decode()
    assert make_vault(Settings(DATABASE_URL=PG_URL, GPUBOT_SECRET_KEY=key)).decrypt(
        Vault([key]).encrypt("y")) == "y"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_key_file_other_users_may_read_or_write_is_refused(tmp_path: Path,
                                                             mode: int) -> None:
    key_file = tmp_path / "gpubot.key"
    key_file.write_text(Fernet.generate_key().decode() + "\n")
    os.chmod(key_file, mode)
    with pytest.raises(SecretKeyError, match=f"mode {mode:o}.*chmod 600"):
        load_or_create_key_file(key_file)
    with pytest.raises(StartupError, match="chmod 600"):  # serve: one line, no traceback
        make_vault(Settings(DATABASE_URL=f"sqlite:///{tmp_path}/gpubot.db"))
    os.chmod(key_file, 0o600)
    assert len(load_or_create_key_file(key_file)) == 1
