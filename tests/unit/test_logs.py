import logging

from bot.logs import RedactingFormatter, redact
from bot.security import Vault, hash_jupyter_password
from tests.fakes.services import TEST_KEY


def test_tokens_keys_and_hashes_are_redacted() -> None:
    token = Vault([TEST_KEY]).encrypt("hunter2hunter2hunter2")
    line = (f"bot xoxb-123-456-abcdef app xapp-1-A0-33-xyz cipher {token} "
            f"hash {hash_jupyter_password('pw-pw-pw-pw-pw-pw')}")
    cleaned = redact(line)
    for secret in ("xoxb-123", "xapp-1-A0", token, "$argon2id$"):
        assert secret not in cleaned
    assert cleaned.count("[redacted]") == 4


def test_the_formatter_redacts_tracebacks_too() -> None:
    try:
        raise RuntimeError("auth failed for xoxb-999-888-secret")
    except RuntimeError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed: %s", ("xapp-1-zz",),
                                   exc_info=__import__("sys").exc_info())
    text = RedactingFormatter("%(message)s").format(record)
    assert "xoxb-999" not in text and "xapp-1-zz" not in text and "RuntimeError" in text
