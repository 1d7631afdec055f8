"""The ``customerio`` catalog's Track API: request bodies and their bytes, hosts and Convert Timestamps.

Transports import from here and only send what they are given; nothing in this package does
I/O. The catalog's schemas are ``schemas/actions/customerio/``; see docs/customerio.md.
"""
from engine.customerio.jsdate import js_date_parse
from engine.customerio.requests import (
    BATCH_ENVELOPE,
    BATCH_SEPARATOR,
    EU_HOST,
    PATHS,
    US_HOST,
    TrackRequest,
    batch_body,
    batch_bytes,
    build_entity,
    host_for,
    resolve_identifiers,
    to_request,
)
from engine.customerio.timestamps import (
    convert_attribute_timestamps,
    convert_valid_timestamp,
)
from engine.delivery.encoding import UnencodableBody, encode

__all__ = [
    "BATCH_ENVELOPE",
    "BATCH_SEPARATOR",
    "EU_HOST",
    "PATHS",
    "US_HOST",
    "TrackRequest",
    "UnencodableBody",
    "batch_body",
    "batch_bytes",
    "build_entity",
    "convert_attribute_timestamps",
    "convert_valid_timestamp",
    "encode",
    "host_for",
    "js_date_parse",
    "resolve_identifiers",
    "to_request",
]
