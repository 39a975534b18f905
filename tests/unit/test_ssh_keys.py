"""SSH key parsing and the lease's host key (bot/domain/ssh.py), over keys the real
``ssh-keygen`` makes (so the parser is held to what users paste), plus the grammar of
``/gpu key`` and the log redaction of a private key pasted by mistake."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.domain.errors import DomainError
from bot.domain.ssh import (InvalidKey, authorized_keys, host_key, login_name, looks_private,
                            parse_public_key)
from bot.logs import REDACTED, redact
from handlers.grammar import Verb, parse
from tests.support.engines import need

D = __import__("datetime").timedelta(hours=24)


@pytest.fixture(scope="module")
def keygen(tmp_path_factory: pytest.TempPathFactory):
    need(shutil.which("ssh-keygen") is not None, "ssh-keygen (Debian openssh-client) missing",
         "apt-get install openssh-client")
    folder = tmp_path_factory.mktemp("keys")

    def make(kind: str, bits: int | None = None, comment: str = "me@laptop") -> tuple[str, str]:
        path = folder / f"{kind}-{bits}-{len(list(folder.iterdir()))}"
        args = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", comment, "-f", str(path)]
        subprocess.run(args + (["-b", str(bits)] if bits else []), check=True)
        printed = subprocess.run(["ssh-keygen", "-lf", f"{path}.pub"], check=True,
                                 capture_output=True, text=True).stdout.split()[1]
        return Path(f"{path}.pub").read_text(), printed

    return make


@pytest.mark.parametrize("kind,bits,expect_bits", [
    ("ed25519", None, 256), ("ecdsa", 256, 256), ("ecdsa", 384, 384), ("ecdsa", 521, 521),
    ("rsa", 3072, 3072), ("rsa", 4096, 4096)])
def test_good_keys_of_each_type_parse_with_ssh_keygens_fingerprint(keygen, kind, bits,
                                                                   expect_bits) -> None:
    line, printed = keygen(kind, bits)
    key = parse_public_key(line)
    assert key.kind == kind and key.bits == expect_bits
    assert key.fingerprint == printed  # what `ssh-keygen -l` and sshd's log say
    assert key.comment == "me@laptop" and key.line == line.strip()


def test_a_key_pasted_with_line_breaks_and_spaces_still_parses(keygen) -> None:
    line, printed = keygen("ed25519")
    kind, blob, comment = line.split()
    assert parse_public_key(f"  {kind}\n{blob}   {comment}\n").fingerprint == printed


def test_short_rsa_is_refused_with_the_bits_needed(keygen) -> None:
    line, _ = keygen("rsa", 2048)
    with pytest.raises(InvalidKey, match="2048 bits; at least 3072"):
        parse_public_key(line)


def test_dsa_is_refused() -> None:
    # OpenSSH 9 no longer makes DSA keys: build one the way old ssh-keygen wrote them
    from cryptography.hazmat.primitives.asymmetric import dsa
    key = dsa.generate_private_key(key_size=1024).public_key()
    with pytest.warns(Warning):  # cryptography deprecates DSA too
        line = key.public_bytes(serialization.Encoding.OpenSSH,
                                serialization.PublicFormat.OpenSSH).decode()
    assert line.startswith("ssh-dss ")
    with pytest.raises(InvalidKey, match="DSA"):
        parse_public_key(line + " old@box")


@pytest.mark.parametrize("fmt", ["openssh", "pkcs8", "pkcs1"])
def test_a_private_key_is_refused_and_called_compromised(fmt: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    formats = {"openssh": serialization.PrivateFormat.OpenSSH,
               "pkcs8": serialization.PrivateFormat.PKCS8,
               "pkcs1": serialization.PrivateFormat.TraditionalOpenSSL}
    pem = key.private_bytes(serialization.Encoding.PEM, formats[fmt],
                            serialization.NoEncryption()).decode()
    assert looks_private(pem)
    with pytest.raises(InvalidKey) as refused:
        parse_public_key(pem)
    assert "compromised" in refused.value.message and "ssh-keygen" in refused.value.message
    assert pem.splitlines()[1] not in refused.value.message  # never echoed back


@pytest.mark.parametrize("text,why", [
    ("", "Paste your public key"),
    ("hello world", "not an OpenSSH public key"),
    ("ssh-ed25519", "not an OpenSSH public key"),
    ("ssh-ed25519 AAAA!!notbase64", "does not read"),
    ("ssh-ed25519 " + base64.b64encode(b"\0\0\0\x0bssh-ed25519\0\0\0\x05short").decode(),
     "does not read"),
    ("ssh-rsa " + base64.b64encode(b"garbage" * 10).decode(), "does not read"),
    ("sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t", "not supported"),
])
def test_garbage_is_refused_with_what_to_do(text: str, why: str) -> None:
    with pytest.raises(InvalidKey, match=why) as refused:
        parse_public_key(text)
    assert "ssh-keygen" in refused.value.message or "Paste" in refused.value.message


def test_a_type_mismatch_is_refused(keygen) -> None:
    line, _ = keygen("ed25519")
    with pytest.raises(InvalidKey):
        parse_public_key(line.replace("ssh-ed25519", "ssh-rsa", 1))


def test_authorized_keys_restricts_each_key(keygen) -> None:
    line, _ = keygen("ed25519")
    text = authorized_keys([parse_public_key(line).line])
    assert text == f"restrict,port-forwarding,pty {line.strip()}\n"
    assert authorized_keys([]) == ""


def test_host_key_is_stable_per_password_and_lease_and_ssh_keygen_agrees(tmp_path) -> None:
    one, again = host_key("pw" * 10, 7), host_key("pw" * 10, 7)
    # the private file's check bytes are random each time; the key itself is the same
    assert (one.public, one.fingerprint) == (again.public, again.fingerprint)
    assert one.public.startswith("ssh-ed25519 ")
    assert host_key("pw" * 10, 8).public != one.public != host_key("other" * 4, 7).public
    need(shutil.which("ssh-keygen") is not None, "ssh-keygen missing")
    private = tmp_path / "host"
    private.write_text(one.private_openssh)
    private.chmod(0o600)
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(private)], check=True,
                             capture_output=True, text=True).stdout.split()[:2]
    assert " ".join(derived) == one.public  # the file sshd loads holds this very key
    (tmp_path / "host.pub").write_text(one.public + "\n")
    printed = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "host.pub")], check=True,
                             capture_output=True, text=True).stdout.split()[1]
    assert printed == one.fingerprint
    assert "PRIVATE" not in repr(one)


def test_login_name_is_the_lowercase_slack_id() -> None:
    assert login_name("U012AB3CD") == "u012ab3cd"
    with pytest.raises(DomainError):
        login_name("9BAD")


# ------------------------------------------------------------------------ the grammar
def test_key_grammar(keygen) -> None:
    line, _ = keygen("rsa", 4096)
    assert len(line) > 200  # longer than any other command may be
    cmd = parse(f"key add {line}", default_duration=D)
    assert (cmd.verb, cmd.action, cmd.arg) == (Verb.KEY, "add", line.strip())
    assert line.split()[1] not in repr(cmd)
    assert (parse("key", default_duration=D).action, parse("key list", default_duration=D)
            .action) == ("list", "list")
    assert parse("KEY remove #2", default_duration=D).arg == "2"
    with pytest.raises(DomainError, match="by its number"):
        parse("key remove all", default_duration=D)
    with pytest.raises(DomainError, match="key add"):
        parse("key frobnicate", default_duration=D)


def test_a_private_key_anywhere_in_a_command_goes_to_the_refusal() -> None:
    pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n" * 40
    for text in (f"key add {pem}", pem, f"claim {pem}"):
        cmd = parse(text, default_duration=D)
        assert (cmd.verb, cmd.action) == (Verb.KEY, "add")
        with pytest.raises(InvalidKey, match="compromised"):
            parse_public_key(cmd.arg or "")


def test_a_private_key_never_reaches_a_log_line() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption()).decode()
    body = pem.splitlines()[3]
    for text in (f"command text: key add {pem} tail", f"cut short: {pem[:300]}",
                 "PuTTY-User-Key-File-3: ssh-rsa\nPrivate-Lines: 14\nAAAAsecret"):
        out = redact(text)
        assert REDACTED in out and body not in out and "AAAAsecret" not in out
