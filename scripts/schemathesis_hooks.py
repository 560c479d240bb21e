"""Schemathesis hooks for the rules of metering's API that an OpenAPI document cannot state:
those that depend on the clock, on two values at once, or on stored data. Its schemas
describe one value, fixed in time, without knowing what the store holds.

`before_call` runs before every request of every phase (examples, coverage, fuzzing,
stateful). It only moves a well-formed value that would break such a rule into the
accepted range; every other value, valid or not, is sent as generated:

- An event `timestamp` may be at most the configured skew (1 h) in the future.
- An API key's `expires_at` must be in the future.
- A query's `end_date` must be after its `start_date`, and an aggregate query spans at
  most 100,000 windows of its `window_type`.
- The event listing takes `page` or `cursor`, not both: `page` goes when a cursor is set.
- A quota's `alert_threshold` must equal the first percent entry of its `thresholds`.
- A meter check's `event.tenant_id`, when given, must be its `tenant_id`.
- A quota's thresholds are never repeated; the schema says so of the JSON values, but
  `1000`, `"1000.0"` and `" 1e3"` are one usage: a repeated value is dropped.
- Metadata numbers are kept exactly, so an integer literal beyond 64 bits is refused
  while the same value written as a double is not; the schema describes numbers by value,
  so such an integer is sent as the double (or, beyond a double's range, as a string).
- The run never revokes the key it authenticates with (see `_spare_own_key`).

`filter_failure` drops the one kind of failure that depends on stored data: a 422 whose
every error says the request does not fit a meter the run defined (see there).
"""

import os
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

import schemathesis


def _parse(value):
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def _format(moment):
    # isoformat pads the year to four digits (strftime's %Y does not below 1000).
    return moment.isoformat(timespec="microseconds")


def _now():
    return datetime.now(timezone.utc)


def _past_timestamp(event):
    if isinstance(event, dict):
        moment = _parse(event.get("timestamp"))
        if moment is not None and moment > _now() - timedelta(minutes=5):
            event["timestamp"] = _format(_now() - timedelta(days=1))


def _exact_numbers(value):
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = _exact_numbers(item)
    elif isinstance(value, list):
        value[:] = [_exact_numbers(item) for item in value]
    elif isinstance(value, int) and not isinstance(value, bool):
        if not -(2**63) <= value < 2**64:
            try:
                return float(value)
            except OverflowError:
                return str(value)
    return value


def _metadata(body):
    if isinstance(body, dict):
        if isinstance(body.get("metadata"), (dict, list)):
            _exact_numbers(body["metadata"])
        for key in ("event", "events"):
            item = body.get(key)
            for event in item if isinstance(item, list) else [item]:
                _metadata(event)


def _whole(value):
    """The value as an int when it is a whole number (`6` or `6.0`, as JSON Schema sees it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value)


def _mirror_alert_threshold(body):
    alert, thresholds = _whole(body.get("alert_threshold")), body.get("thresholds")
    if alert is None or not 0 <= alert <= 100 or not isinstance(thresholds, list):
        return
    for entry in thresholds:
        if isinstance(entry, dict) and "percent" in entry:
            percent = _whole(entry["percent"])
            if percent is not None and 1 <= percent <= 100:
                body["alert_threshold"] = percent
            return


def _threshold_value(entry):
    if not isinstance(entry, dict) or len(entry) != 1:
        return None
    ((kind, value),) = entry.items()
    if isinstance(value, bool):
        return None
    text = repr(value) if isinstance(value, float) else str(value)
    try:
        return kind, Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None


def _distinct_thresholds(body):
    thresholds = body.get("thresholds")
    if not isinstance(thresholds, list):
        return
    seen, kept = [], []
    for entry in thresholds:
        value = _threshold_value(entry)
        if value is not None and value in seen:
            continue
        seen.append(value)
        kept.append(entry)
    thresholds[:] = kept


def _fix_body(body):
    if not isinstance(body, dict):
        return
    _distinct_thresholds(body)
    _metadata(body)
    _mirror_alert_threshold(body)
    event = body.get("event")
    if "meter" in body and isinstance(event, dict) and isinstance(event.get("tenant_id"), str):
        if isinstance(body.get("tenant_id"), str):
            event["tenant_id"] = body["tenant_id"]
    _past_timestamp(body)
    events = body.get("events")
    for event in events if isinstance(events, list) else []:
        _past_timestamp(event)
    _past_timestamp(body.get("event"))
    expires = _parse(body.get("expires_at"))
    if expires is not None and expires < _now() + timedelta(minutes=5):
        body["expires_at"] = _format(_now() + timedelta(days=1))


# metering_core::query::MAX_AGGREGATE_WINDOWS, and the shortest length of each window in
# hours, as `AggregateQuery::windows_at_most` counts them.
MAX_AGGREGATE_WINDOWS = 100_000
_SHORTEST_HOURS = {"hourly": 1, "daily": 23, "weekly": 7 * 24 - 1, "monthly": 28 * 24 - 1}


def _fix_query(query, aggregates):
    if not isinstance(query, dict):
        return
    start, end = _parse(query.get("start_date")), _parse(query.get("end_date"))
    if start is not None and end is not None and end <= start:
        try:
            query["end_date"] = _format(start + timedelta(days=1))
        except OverflowError:
            query["start_date"] = _format(end - timedelta(days=1))
        start, end = _parse(query.get("start_date")), _parse(query.get("end_date"))
    window = query.get("window_type")
    shortest = _SHORTEST_HOURS.get(window) if isinstance(window, str) else None
    if aggregates and shortest and start is not None and end is not None:
        longest = timedelta(hours=(MAX_AGGREGATE_WINDOWS - 1) * shortest)
        if end - start > longest:
            query["end_date"] = _format(start + longest)
    cursor = query.get("cursor")
    if isinstance(cursor, str) and cursor.strip() and "page" in query:
        del query["page"]


def _spare_own_key(case):
    # The run authenticates with one admin key; revoking it (allowed while another admin key
    # is active, e.g. one the run created) would leave every later request unauthenticated.
    # Such a request goes to a key id that exists nowhere instead (404, as for any unknown id).
    own = os.environ.get("METERING_SCHEMATHESIS_OWN_KEY_ID")
    operation = case.operation
    if (
        own
        and operation.method.upper() == "DELETE"
        and operation.path == "/v1/meter/api-keys/{id}"
        and isinstance(case.path_parameters, dict)
        and str(case.path_parameters.get("id", "")).strip().lower() == own
    ):
        case.path_parameters["id"] = str(uuid.uuid4())


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    _fix_body(case.body)
    _fix_query(case.query, case.operation.path == "/v1/meter/aggregates")
    _spare_own_key(case)


# Rules that hold only against what the store holds, which no schema can know: a meter query
# may group and filter by the meter's own dimensions, and a meter check's event must match
# the meter's filter. The run defines meters with generated dimensions and filters, so a
# generated query or event rarely fits them; the server answers 422 naming the rule. Only a
# failure whose every error is one of these is dropped.
_STORED_DATA_RULES = {
    "/v1/meter/meters/{key}/query": ("a dimension of this meter", "this meter has no dimensions"),
    "/v1/meter/validate": ("does not match the filter of meter",),
}


@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    rules = _STORED_DATA_RULES.get(case.operation.path)
    if rules is None or response.status_code != 422 or failure.code != "ST202":
        return True
    try:
        errors = response.json()["error"]["details"]["errors"]
    except (ValueError, KeyError, TypeError):
        return True
    if not errors:
        return True
    data_dependent = all(any(rule in str(e.get("message", "")) for rule in rules) for e in errors)
    return not data_dependent
