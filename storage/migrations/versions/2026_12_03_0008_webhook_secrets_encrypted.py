"""webhook secrets encrypted, delivery log reduced to outcome classes

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-03 17:00:00

`webhook_subscription.secret` held the HMAC signing keys in plaintext: whoever could
read the table could forge alerts. They are encrypted here, in the migration, under
the first key of `LORAKOM_SECRET_KEYS` (`storage.secret_box`), and the plaintext
column is dropped, so no installation keeps a readable secret past its upgrade. A
database with subscriptions cannot be upgraded without the key: the migration stops
with a message naming the variable (nothing is changed, it runs in one transaction).

A stored URL with credentials in it (`https://user:password@…`, sent as Basic auth
until now) loses them and its subscription is disabled: delivery refuses such URLs
from now on, and the password must not stay readable in the table either.

`webhook_attempt.status_code` and `.error` (exception text that told open ports
from closed ones) become one `outcome` class; the old rows are classified the same
way new attempts are, and their text is dropped.

Offline (`--sql`) there is no key and no rows to see: the rendered SQL refuses to
run on a database that has subscriptions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import httpx
import sqlalchemy as sa
from alembic import context, op

from storage.secret_box import SecretBox, SecretSettings

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUSE_STORED_SECRETS = """
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM webhook_subscription) THEN
    RAISE EXCEPTION 'webhook secrets must be encrypted with LORAKOM_SECRET_KEYS: run lorakom db upgrade online';
  END IF;
END $$
"""

OUTCOME_OF_OLD_ATTEMPTS = """
UPDATE webhook_attempt SET outcome = CASE
  WHEN status_code BETWEEN 200 AND 299 THEN '2xx'
  WHEN status_code BETWEEN 300 AND 399 THEN '3xx'
  WHEN status_code BETWEEN 400 AND 499 THEN '4xx'
  WHEN status_code BETWEEN 500 AND 599 THEN '5xx'
  WHEN status_code IS NULL AND error ILIKE '%timeout%' THEN 'timeout'
  ELSE 'network-error'
END
"""


def _reencode(
    column_from: str, column_to: str, convert: Callable[[SecretBox, str], str], needed_for: str
) -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(f"SELECT id, {column_from} FROM webhook_subscription ORDER BY id FOR UPDATE")
    ).all()
    if not rows:
        return
    box = SecretBox.required(SecretSettings(), f"{needed_for} {len(rows)} stored webhook secret(s)")
    connection.execute(
        sa.text(f"UPDATE webhook_subscription SET {column_to} = :value WHERE id = :id"),
        [{"id": row_id, "value": convert(box, value)} for row_id, value in rows],
    )


def _strip_credentials_from_urls() -> None:
    connection = op.get_bind()
    for row_id, url in connection.execute(
        sa.text("SELECT id, url FROM webhook_subscription WHERE url LIKE '%@%'")
    ).all():
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            continue  # never sent: delivery refuses what it cannot parse
        if parsed.userinfo:
            connection.execute(
                sa.text("UPDATE webhook_subscription SET url = :url, enabled = false WHERE id = :id"),
                {"id": row_id, "url": str(parsed.copy_with(userinfo=b""))},
            )


def upgrade() -> None:
    op.add_column("webhook_subscription", sa.Column("secret_ciphertext", sa.Text(), nullable=True))
    if context.is_offline_mode():
        op.execute(REFUSE_STORED_SECRETS)
    else:
        _reencode("secret", "secret_ciphertext", SecretBox.seal, "encrypting the")
        _strip_credentials_from_urls()
    op.alter_column("webhook_subscription", "secret_ciphertext", nullable=False)
    op.drop_column("webhook_subscription", "secret")

    op.add_column("webhook_attempt", sa.Column("outcome", sa.String(20), nullable=True))
    op.execute(OUTCOME_OF_OLD_ATTEMPTS)
    op.alter_column("webhook_attempt", "outcome", nullable=False)
    op.drop_column("webhook_attempt", "status_code")
    op.drop_column("webhook_attempt", "error")


def downgrade() -> None:
    op.add_column("webhook_attempt", sa.Column("status_code", sa.SmallInteger(), nullable=True))
    op.add_column("webhook_attempt", sa.Column("error", sa.Text(), nullable=True))
    op.execute("UPDATE webhook_attempt SET error = outcome WHERE outcome <> '2xx'")
    op.drop_column("webhook_attempt", "outcome")

    op.add_column("webhook_subscription", sa.Column("secret", sa.String(100), nullable=True))
    if context.is_offline_mode():
        op.execute(REFUSE_STORED_SECRETS)
    else:
        _reencode("secret_ciphertext", "secret", SecretBox.open, "decrypting the")
    op.alter_column("webhook_subscription", "secret", nullable=False)
    op.drop_column("webhook_subscription", "secret_ciphertext")
