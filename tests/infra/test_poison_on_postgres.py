"""The poison tests again, on the machine's PostgreSQL and Mosquitto (tests/service/test_poison.py).

PostgreSQL refuses more than SQLite (a NUL in text), and its refusals come from the server
(COPY, constraints) as well as from psycopg; Mosquitto hangs up on a topic that is not UTF-8 or
carries NUL, where the embedded broker delivers some. Collected here, each test takes this
folder's fixtures (`db_url`, `engine`, `storage` on a fresh database, `mqtt_target` Mosquitto
under the test's own namespace).
"""

from tests.service.test_poison import (
    test_a_batch_the_database_refuses_is_isolated_at_once_without_a_pause,
    test_a_database_that_cannot_take_writes_is_waited_for_and_nothing_is_quarantined,
    test_poison_in_a_stream_of_valid_messages_is_dead_lettered_once_and_ingest_goes_on,
    test_revision_0005_keeps_old_dead_letters_as_their_bytes_and_back,
    test_what_the_database_refuses_is_data_and_a_lock_it_cannot_get_is_connection,
)

__all__ = [
    "test_a_batch_the_database_refuses_is_isolated_at_once_without_a_pause",
    "test_a_database_that_cannot_take_writes_is_waited_for_and_nothing_is_quarantined",
    "test_poison_in_a_stream_of_valid_messages_is_dead_lettered_once_and_ingest_goes_on",
    "test_revision_0005_keeps_old_dead_letters_as_their_bytes_and_back",
    "test_what_the_database_refuses_is_data_and_a_lock_it_cannot_get_is_connection",
]
