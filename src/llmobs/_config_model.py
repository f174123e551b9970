"""The base of every configuration model: unknown keys, infinite numbers and YAML booleans where a number is
meant are errors.

Why: pydantic's lax mode reads YAML `true` as 1 (`port: true` was port 1, `interval_seconds: true` one
second) and the string "yes" as True, and accepts `.inf` wherever `gt=0` is the only bound (an infinite
scrape interval scraped once and never again). A config an operator typed by hand should say what it
means; each of these is far more likely a slip than an intent.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def _kinds(annotation: Any) -> set[type]:
    """The plain types an annotation admits (through Optional, unions and Annotated)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _kinds(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return set().union(*(_kinds(a) for a in get_args(annotation)))
    return {annotation} if isinstance(annotation, type) else set()


class StrictConfigModel(BaseModel):
    """`extra="forbid"`, `allow_inf_nan=False`, and no booleans for numbers nor strings for booleans."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _say_what_you_mean(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None:
            return value
        kinds = _kinds(field.annotation)
        if isinstance(value, bool) and bool not in kinds and kinds & {int, float}:
            raise ValueError(f"must be a number, not {str(value).lower()}")
        if isinstance(value, str) and kinds == {bool}:
            raise ValueError(f"must be true or false, not the string {value!r}")
        return value


def check_http_url(url: str) -> str:
    """`url` when a client can use it as an http(s) URL, else ValueError saying why (a validator's message).

    One check for every URL a config names (scrape targets, doors, the OTLP endpoint): urlsplit raises on
    `http://]`, and its `port` on `:99999` or `:abc` — which the scraper hit every cycle, and gRPC wrapped
    round to another port in silence — and a host with whitespace in it is no host."""
    if not url.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError as e:
        raise ValueError(f"not a valid URL: {e}") from None
    if not host:
        raise ValueError("has no host")
    if any(c.isspace() for c in parts.netloc):
        raise ValueError("has whitespace in its host")
    return url
