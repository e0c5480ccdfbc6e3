"""The secret box: what is sealed opens only with the configured keys, rotation moves it
to the first key, and a missing or wrong key is an error that names the variable."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from domain.errors import ConfigurationError
from storage.secret_box import KEYS_VARIABLE, SecretBox, SecretSettings, new_key

SECRET = "whsec_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"


def box_of(*keys: str) -> SecretBox:
    found = SecretBox.from_settings(SecretSettings(keys=SecretStr(",".join(keys))))
    assert found is not None
    return found


def test_sealed_secret_opens_and_is_not_readable() -> None:
    box = box_of(new_key())
    sealed = box.seal(SECRET)
    assert SECRET not in sealed
    assert SECRET[6:20] not in sealed
    assert box.open(sealed) == SECRET
    assert box.seal(SECRET) != sealed  # a fresh IV each time: equal secrets do not show as equal


def test_a_wrong_key_is_a_clear_error() -> None:
    sealed = box_of(new_key()).seal(SECRET)
    with pytest.raises(ConfigurationError, match=KEYS_VARIABLE):
        box_of(new_key()).open(sealed)


def test_rotation_moves_a_secret_to_the_first_key() -> None:
    old, new = new_key(), new_key()
    sealed_old = box_of(old).seal(SECRET)
    both = box_of(new, old)
    assert both.open(sealed_old) == SECRET  # every key decrypts
    resealed = both.reseal(sealed_old)
    assert box_of(new).open(resealed) == SECRET  # the old key is no longer needed
    with pytest.raises(ConfigurationError):
        box_of(old).open(resealed)
    with pytest.raises(ConfigurationError, match="put the key"):
        box_of(new_key()).reseal(sealed_old)


def test_missing_keys() -> None:
    assert SecretBox.from_settings(SecretSettings()) is None
    assert SecretBox.from_settings(SecretSettings(keys=SecretStr(" , "))) is None
    with pytest.raises(ConfigurationError, match=f"webhook delivery needs {KEYS_VARIABLE}"):
        SecretBox.required(SecretSettings(), "webhook delivery")


def test_a_malformed_key_is_named_by_position_never_echoed() -> None:
    with pytest.raises(ConfigurationError, match="key 2 of") as raised:
        box_of(new_key(), "not-a-key-but-a-password")
    assert "not-a-key-but-a-password" not in str(raised.value)


def test_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = new_key(), new_key()
    monkeypatch.setenv(KEYS_VARIABLE, f"{first}, {second}")
    box = SecretBox.from_settings(SecretSettings())
    assert box is not None
    assert box.key_count == 2
    assert box_of(first).open(box.seal(SECRET)) == SECRET
