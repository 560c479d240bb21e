"""Schemathesis hooks for the rules of metering's API that depend on the clock or on two
values at once, which an OpenAPI document cannot state (its schemas describe one value,
fixed in time). Each hook only moves a well-formed date-time that would break such a rule
into the accepted range; every other value, valid or not, is sent as generated.

- An event `timestamp` may be at most the configured skew (1 h) in the future.
- An API key's `expires_at` must be in the future.
- A query's `end_date` must be after its `start_date`.
"""

import os
from datetime import datetime, timedelta, timezone

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
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _past_timestamp(event):
    if isinstance(event, dict):
        moment = _parse(event.get("timestamp"))
        if moment is not None and moment > datetime.now(timezone.utc) - timedelta(minutes=5):
            event["timestamp"] = _format(datetime.now(timezone.utc) - timedelta(days=1))


@schemathesis.hook
def map_body(ctx, body):
    if not isinstance(body, dict):
        return body
    _past_timestamp(body)
    for event in body.get("events") or [] if isinstance(body.get("events"), list) else []:
        _past_timestamp(event)
    _past_timestamp(body.get("event"))
    expires = _parse(body.get("expires_at"))
    if expires is not None and expires < datetime.now(timezone.utc) + timedelta(minutes=5):
        body["expires_at"] = _format(datetime.now(timezone.utc) + timedelta(days=1))
    return body


@schemathesis.hook
def map_query(ctx, query):
    if not isinstance(query, dict):
        return query
    start, end = _parse(query.get("start_date")), _parse(query.get("end_date"))
    if start is not None and end is not None and end <= start:
        query["end_date"] = _format(start + timedelta(days=1))
    return query


@schemathesis.hook
def filter_path_parameters(ctx, path_parameters):
    # The run authenticates with one admin key; revoking it (allowed while another admin key
    # is active, e.g. one the run created) would leave every later request unauthenticated.
    own = os.environ.get("METERING_SCHEMATHESIS_OWN_KEY_ID")
    operation = ctx.operation
    if own and operation.method.upper() == "DELETE" and operation.path == "/v1/meter/api-keys/{id}":
        return (path_parameters or {}).get("id") != own
    return True
