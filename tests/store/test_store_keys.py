"""crawler.store.keys: a key is stored as its sha256 only, and revoked by id, prefix or the key itself."""

import hashlib

import pytest
from scrapy.settings import Settings

from crawler.db.pool import close_pools
from crawler.store import keys

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(database_url):
    return Settings(
        {"DATABASE_URL": database_url, "PG_CONNECT_TIMEOUT": 5, "PG_POOL_MIN_SIZE": 1, "PG_POOL_MAX_SIZE": 2}
    )


async def test_keys_are_stored_as_hashes_and_revoked_by_id_prefix_or_key(settings, db):
    first, second, third = (keys.create_key(settings, "store-user") for _ in range(3))
    assert len({first, second, third}) == 3
    stored = db.execute("SELECT key_sha256, prefix FROM api_keys WHERE user_name = 'store-user'").fetchall()
    assert {bytes(h) for h, _ in stored} == {hashlib.sha256(k.encode()).digest() for k in (first, second, third)}
    assert all(first not in str(row) for row in db.execute("SELECT * FROM api_keys").fetchall())
    try:
        assert await keys.authenticate(settings, first) == "store-user"
        by_id = next(k.id for k in keys.list_keys(settings, "store-user") if first.startswith(k.prefix))
        assert keys.revoke_key(settings, by_id) == 1
        assert keys.revoke_key(settings, second) == 1  # the whole key names its prefix
        assert await keys.authenticate(settings, first) is None
        assert await keys.authenticate(settings, second) is None
        assert await keys.authenticate(settings, third) == "store-user"
        assert await keys.authenticate(settings, "csk_" + "x" * 43) is None
        assert await keys.authenticate(settings, "not-even-a-key") is None
        revoked = [k for k in keys.list_keys(settings, "store-user") if k.revoked_at is not None]
        assert len(revoked) == 2
    finally:
        await close_pools()
    with pytest.raises(keys.ApiKeyError):
        keys.create_key(settings, "")
