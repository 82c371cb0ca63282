"""`[cluster]`: refused at start-up, naming the keys, without the engines nodes share."""

from __future__ import annotations

import pytest

from csms.settings import ConfigError
from web.settings import load_settings

ENGINES = {"CSMS_STORE__BACKEND": "mongodb", "CSMS_TASKS__BROKER": "redis"}


@pytest.mark.parametrize(("environ", "named"), [
    ({}, ['store.backend = "mongodb"', 'tasks.broker = "redis"']),
    ({"CSMS_STORE__BACKEND": "mongodb"}, ['tasks.broker = "redis"']),
    ({"CSMS_TASKS__BROKER": "redis"}, ['store.backend = "mongodb"']),
])
def test_a_cluster_needs_mongodb_and_the_redis_broker(environ: dict[str, str],
                                                      named: list[str]) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(None, {"CSMS_CLUSTER__ENABLED": "true", **environ})
    message = str(refused.value)
    assert message.startswith("invalid configuration: cluster.enabled = true needs ")
    assert all(key in message for key in named), message


def test_the_cluster_redis_defaults_to_the_broker_s() -> None:
    settings = load_settings(None, {"CSMS_CLUSTER__ENABLED": "true", **ENGINES,
                                    "CSMS_TASKS__REDIS_URL": "redis://jobs:6379/1"})
    assert settings.cluster_redis_url == "redis://jobs:6379/1"
    settings = load_settings(None, {"CSMS_CLUSTER__ENABLED": "true", **ENGINES,
                                    "CSMS_CLUSTER__REDIS_URL": "redis://nodes:6379/2"})
    assert settings.cluster_redis_url == "redis://nodes:6379/2"
    assert not load_settings(None, {}).cluster.enabled  # off unless asked
