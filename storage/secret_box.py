"""Secrets that must be used again, kept in the database only as ciphertext.

An API key is hashed, because the platform only ever compares it. An outgoing
webhook's signing secret cannot be hashed: every delivery is signed with it. So it
is encrypted (Fernet: AES-128-CBC with an HMAC-SHA256 tag, from `cryptography`)
with a key that lives outside the database, in `LORAKOM_SECRET_KEYS`. Whoever
reads the database, a backup or the Grafana reader's view of it, holds only
ciphertext and cannot forge alerts.

`LORAKOM_SECRET_KEYS` is a comma-separated list: the first key encrypts, every key
decrypts. Rotation is therefore: put a new key in front, restart, run
`lorakom secrets rotate` (re-encrypts every stored secret under the first key),
then drop the old key. A key that opens none of the stored secrets is a
configuration error that names the variable, never a silent failure to sign.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.errors import ConfigurationError

KEYS_VARIABLE = "LORAKOM_SECRET_KEYS"


class SecretSettings(BaseSettings):
    """`LORAKOM_SECRET_KEYS`: comma-separated Fernet keys, newest first."""

    model_config = SettingsConfigDict(env_prefix="LORAKOM_SECRET_", extra="forbid")

    keys: SecretStr | None = None


def new_key() -> str:
    """A fresh key for `LORAKOM_SECRET_KEYS` (32 random bytes, URL-safe base64)."""
    return Fernet.generate_key().decode()


class SecretBox:
    """Encrypts under the first key, decrypts under any; see the module docstring."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ConfigurationError(f"{KEYS_VARIABLE} holds no key")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.encode()))
            except ValueError as exc:
                # The key itself is never echoed: an error message ends up in logs.
                raise ConfigurationError(
                    f"key {position} of {KEYS_VARIABLE} is not a Fernet key "
                    "(32 bytes in URL-safe base64; `lorakom secrets new-key` prints one)"
                ) from exc
        self._keys = MultiFernet(fernets)
        self.key_count = len(fernets)

    @classmethod
    def from_settings(cls, settings: SecretSettings) -> SecretBox | None:
        """The box of the configured keys, or None when none are configured."""
        if settings.keys is None:
            return None
        keys = [key.strip() for key in settings.keys.get_secret_value().split(",") if key.strip()]
        return cls(keys) if keys else None

    @classmethod
    def required(cls, settings: SecretSettings, needed_for: str) -> SecretBox:
        """The configured box; without keys a `ConfigurationError` that says what needs them."""
        box = cls.from_settings(settings)
        if box is None:
            raise ConfigurationError(
                f"{needed_for} needs {KEYS_VARIABLE}: secrets are stored encrypted with a key kept outside "
                "the database (`lorakom secrets new-key` prints one)"
            )
        return box

    def seal(self, plaintext: str) -> str:
        return self._keys.encrypt(plaintext.encode()).decode("ascii")

    def open(self, ciphertext: str) -> str:
        try:
            return self._keys.decrypt(ciphertext.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as exc:
            raise ConfigurationError(
                f"a stored secret cannot be decrypted with any key of {KEYS_VARIABLE}: "
                "the key that encrypted it is missing (or the stored value was altered)"
            ) from exc

    def reseal(self, ciphertext: str) -> str:
        """The same secret under the first key (what rotation writes back)."""
        try:
            return self._keys.rotate(ciphertext.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError) as exc:
            raise ConfigurationError(
                f"a stored secret cannot be decrypted with any key of {KEYS_VARIABLE}; "
                "put the key that encrypted it back in the list before rotating"
            ) from exc
