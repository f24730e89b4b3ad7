"""The whole loop on Mosquitto with dynamic security (no anonymous clients, per-device ACLs) and PostgreSQL."""

from __future__ import annotations

from gateway import MosquittoDynsec, Topics, new_secret
from tests.helpers import DynsecBroker
from tests.service.test_loop_e2e import run_loop


def test_loop_end_to_end(pg_database_url: str, dynsec_broker: DynsecBroker, topics: Topics) -> None:
    password = new_secret()
    MosquittoDynsec(dynsec_broker.admin, topics=topics).grant_service("replenish-service", password)
    run_loop(
        pg_database_url,
        topics.namespace,
        mqtt_url=f"mqtt://replenish-service:{password}@127.0.0.1:{dynsec_broker.port}",
        admin_url=f"mqtt://admin:{dynsec_broker.admin.password}@127.0.0.1:{dynsec_broker.port}",
    )
