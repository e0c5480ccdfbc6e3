"""The standing security suite: every door of the platform, probed as an attacker would.

It shares the API suite's fixtures (a session's app on the migrated database, tenants
made per test), so that a probe here meets exactly the app the API tests meet.
"""

from tests.api.conftest import (  # noqa: F401  (fixtures, found by pytest by name)
    client,
    engine,
    hook,
    make_tenant,
    neighbour,
    region_key,
    settings,
    tenant,
)
