"""The fulfilment API's tests again on the machine's PostgreSQL, which refuses NUL in text: still 4xx, never 5xx.

Each test is imported from tests/service/test_fulfilment_api.py; collected here, its `db_url` is a
fresh PostgreSQL database (tests/infra/conftest.py).
"""

from tests.service.test_fulfilment_api import (
    test_a_fulfilment_system_sees_only_its_own_orders_once_released,
    test_every_malformed_field_answers_4xx_with_its_reason,
    test_schemathesis_finds_no_server_error_in_the_fulfilment_api,
)

__all__ = [
    "test_a_fulfilment_system_sees_only_its_own_orders_once_released",
    "test_every_malformed_field_answers_4xx_with_its_reason",
    "test_schemathesis_finds_no_server_error_in_the_fulfilment_api",
]
