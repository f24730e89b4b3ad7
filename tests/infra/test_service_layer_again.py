"""The service layer's tests again, on the machine's PostgreSQL and Mosquitto instead of SQLite and the embedded broker.

Each test below is imported from tests/service; collected here, it takes this folder's fixtures
(`db_url`, `engine`, `storage` on a fresh PostgreSQL database, `mqtt_target` the machine's
Mosquitto under the test's own topic namespace).
"""

from tests.service.calendars.test_away_wiring import test_the_tick_forecasts_with_the_claiming_households_away_periods_and_ordering_can_ask_for_them
from tests.service.calendars.test_calendar_page import test_a_household_types_uploads_subscribes_and_sees_its_time_away_and_only_its_own
from tests.service.calendars.test_feeds import test_a_feed_is_fetched_conditionally_and_a_failing_one_keeps_its_last_good_copy
from tests.service.test_catalog import (
    test_revision_0011_keeps_old_products_and_choices_meaningful_and_goes_back,
    test_substitutes_are_ranked_compatible_only_and_quantity_follows_the_target,
    test_the_cli_imports_fulfillers_keeping_old_secrets_and_storing_keys_hashed,
    test_the_cli_imports_good_rows_names_bad_ones_and_updates_by_sku,
    test_the_demo_catalog_covers_every_simulated_kind_and_slot,
    test_the_operator_api_imports_csv_and_json_with_its_token_only,
)
from tests.service.test_boot_identity import (
    test_a_redelivered_message_is_stored_once_with_or_without_a_boot,
    test_reboots_that_reset_the_clock_to_the_same_epoch_store_every_reading,
    test_revision_0006_gives_old_readings_the_empty_boot_and_back,
)
from tests.service.test_clock_poisoning import test_one_reading_dated_days_ahead_does_not_date_the_later_ones_in_the_past
from tests.service.test_flood import test_a_status_flood_does_not_hold_up_other_devices_telemetry
from tests.service.test_fleet import test_a_fleet_of_a_few_hundred_devices_reaches_the_broker
from tests.service.test_forecaster import (
    test_a_prior_is_learnt_in_grams_when_households_buy_different_bags,
    test_away_periods_stretch_time_to_empty_by_the_time_away,
    test_forecasts_are_stored_readable_and_clear_the_dirty_flag,
    test_priors_are_learnt_per_model_and_slot_and_carry_a_cold_start_slot,
    test_the_prior_fades_as_the_slot_brings_its_own_readings,
    test_time_away_in_the_past_is_not_read_as_slow_use,
)
from tests.service.test_hostile_stream import test_hostile_messages_in_a_valid_stream_are_dead_lettered_and_every_valid_reading_stored_once
from tests.service.test_ingest import test_readings_stored_once_only_with_consent_and_bad_messages_dead_lettered
from tests.service.test_ingest_settle import (
    test_a_replaced_event_gives_the_new_level_when_levels_do_not,
    test_an_odd_slot_name_is_staged_verbatim,
    test_counts_consent_duplicates_sentinels_and_unknown_slots,
    test_ingest_only_appends_and_settle_folds_levels_refills_and_dirty,
    test_the_database_normalises_exactly_like_normalise_level,
)
from tests.service.test_needs import (
    test_a_cancel_holds_the_slot_for_not_now_then_the_need_is_ordered_again_once,
    test_approval_rechecks_consent_and_a_need_is_ordered_again_once_consent_is_back,
    test_revision_0009_gives_old_orders_their_need_and_old_consents_their_words_and_back,
    test_revision_0009_refuses_a_slot_with_two_open_orders_naming_it,
    test_the_database_keeps_one_open_order_per_slot,
    test_two_processes_placing_at_once_never_hold_more_than_the_budget,
    world,
)
from tests.service.test_over_budget_notice import test_a_household_is_told_when_its_device_keeps_flooding_and_only_that_household
from tests.service.test_provisioning import (
    test_household_claims_on_the_web_page_with_the_printed_code,
    test_operator_api_provisions_with_its_token_only,
    test_provisioning_stores_only_hashes_and_claims_need_the_printed_code,
)
from tests.service.test_retained_rejects import test_a_bad_retained_birth_is_dead_lettered_once_across_workers_and_restarts
from tests.service.test_retention import (
    test_ingest_goes_on_while_a_long_reduction_runs,
    test_new_readings_are_settled_after_a_reduction_that_took_every_reading,
    test_old_settled_readings_become_daily_aggregates_and_newer_ones_stay,
    test_readings_not_yet_settled_stay_however_old_and_merge_into_their_day_later,
    test_small_batches_give_the_aggregates_of_one_big_batch,
    test_the_migrations_build_the_tables_the_models_declare,
    test_the_service_tick_applies_retention_days_at_most_once_an_hour,
)

__all__ = [
    "test_a_feed_is_fetched_conditionally_and_a_failing_one_keeps_its_last_good_copy",
    "test_a_household_types_uploads_subscribes_and_sees_its_time_away_and_only_its_own",
    "test_the_tick_forecasts_with_the_claiming_households_away_periods_and_ordering_can_ask_for_them",
    "test_a_cancel_holds_the_slot_for_not_now_then_the_need_is_ordered_again_once",
    "test_approval_rechecks_consent_and_a_need_is_ordered_again_once_consent_is_back",
    "test_revision_0009_gives_old_orders_their_need_and_old_consents_their_words_and_back",
    "test_revision_0009_refuses_a_slot_with_two_open_orders_naming_it",
    "test_the_database_keeps_one_open_order_per_slot",
    "test_two_processes_placing_at_once_never_hold_more_than_the_budget",
    "world",
    "test_revision_0011_keeps_old_products_and_choices_meaningful_and_goes_back",
    "test_substitutes_are_ranked_compatible_only_and_quantity_follows_the_target",
    "test_the_cli_imports_fulfillers_keeping_old_secrets_and_storing_keys_hashed",
    "test_the_cli_imports_good_rows_names_bad_ones_and_updates_by_sku",
    "test_the_demo_catalog_covers_every_simulated_kind_and_slot",
    "test_the_operator_api_imports_csv_and_json_with_its_token_only",
    "test_a_bad_retained_birth_is_dead_lettered_once_across_workers_and_restarts",
    "test_one_reading_dated_days_ahead_does_not_date_the_later_ones_in_the_past",
    "test_a_fleet_of_a_few_hundred_devices_reaches_the_broker",
    "test_a_status_flood_does_not_hold_up_other_devices_telemetry",
    "test_a_redelivered_message_is_stored_once_with_or_without_a_boot",
    "test_a_prior_is_learnt_in_grams_when_households_buy_different_bags",
    "test_a_replaced_event_gives_the_new_level_when_levels_do_not",
    "test_an_odd_slot_name_is_staged_verbatim",
    "test_away_periods_stretch_time_to_empty_by_the_time_away",
    "test_counts_consent_duplicates_sentinels_and_unknown_slots",
    "test_forecasts_are_stored_readable_and_clear_the_dirty_flag",
    "test_hostile_messages_in_a_valid_stream_are_dead_lettered_and_every_valid_reading_stored_once",
    "test_a_household_is_told_when_its_device_keeps_flooding_and_only_that_household",
    "test_household_claims_on_the_web_page_with_the_printed_code",
    "test_ingest_goes_on_while_a_long_reduction_runs",
    "test_ingest_only_appends_and_settle_folds_levels_refills_and_dirty",
    "test_new_readings_are_settled_after_a_reduction_that_took_every_reading",
    "test_old_settled_readings_become_daily_aggregates_and_newer_ones_stay",
    "test_operator_api_provisions_with_its_token_only",
    "test_priors_are_learnt_per_model_and_slot_and_carry_a_cold_start_slot",
    "test_provisioning_stores_only_hashes_and_claims_need_the_printed_code",
    "test_readings_not_yet_settled_stay_however_old_and_merge_into_their_day_later",
    "test_readings_stored_once_only_with_consent_and_bad_messages_dead_lettered",
    "test_reboots_that_reset_the_clock_to_the_same_epoch_store_every_reading",
    "test_revision_0006_gives_old_readings_the_empty_boot_and_back",
    "test_small_batches_give_the_aggregates_of_one_big_batch",
    "test_the_database_normalises_exactly_like_normalise_level",
    "test_the_migrations_build_the_tables_the_models_declare",
    "test_the_prior_fades_as_the_slot_brings_its_own_readings",
    "test_the_service_tick_applies_retention_days_at_most_once_an_hour",
    "test_time_away_in_the_past_is_not_read_as_slow_use",
]
