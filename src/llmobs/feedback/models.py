"""Wire format of a feedback event, its validation and the rating normalisation.

Parsing is strict on purpose: a rating of `true`, `"5"`, `4.5` or NaN is a client bug, and accepting it
would silently skew the negative ratio. Every error names the field (`events[3].rating`) so the client
can fix it without reading server logs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

RatingLabel = Literal["positive", "neutral", "negative"]

_Id = Annotated[StrictStr, Field(min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$")]
# No control characters: names become label values, and a NUL or newline breaks exposition parsers.
_Name = Annotated[StrictStr, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]
_Category = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]


def _number(value: object) -> object:
    """A JSON number and nothing else: lax float parsing would take `true` and `"12.5"`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be a number")
    return value


_Millis = Annotated[float, Field(ge=0, le=86_400_000), BeforeValidator(_number)]
_UnixSeconds = Annotated[float, Field(ge=0), BeforeValidator(_number)]


def _thumb(value: int) -> int:
    """Thumbs are -1 or 1; pydantic's Literal would also take `true` and `1.0`, so check by hand."""
    if value not in (-1, 1):
        raise ValueError("thumbs rating must be -1 or 1")
    return value


def _integral(value: object) -> object:
    """JSON Schema's `integer` includes 5.0 (the same JSON number as 5), so accept integral floats;
    `true`, `"5"` and 4.5 still fail the strict integer check that follows."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_Int = Annotated[StrictInt, BeforeValidator(_integral)]
_Thumb = Annotated[_Int, AfterValidator(_thumb), WithJsonSchema({"type": "integer", "enum": [-1, 1]})]
_Star = Annotated[StrictInt, Field(ge=1, le=5), BeforeValidator(_integral)]


class _EventBase(BaseModel):
    """Fields every event has, whatever its rating scale."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    request_id: _Id = Field(description="The vLLM response id (e.g. `chatcmpl-…`); unique per app.")
    model: _Name = Field(description="The served model name the response came from.")
    endpoint: _Name | None = Field(default=None, description="The serving endpoint, when the client knows.")
    categories: list[_Category] | None = Field(
        default=None,
        max_length=16,
        description="Free-form reasons (e.g. `wrong`, `slow`); stored, not labels.",
    )
    app: _Name | None = Field(
        default=None, description="The posting app; defaults to the token's app and must match it (else 403)."
    )
    ttft_ms: _Millis | None = Field(default=None, description="Client-observed time to first token, ms.")
    e2e_ms: _Millis | None = Field(default=None, description="Client-observed end-to-end latency, ms.")
    timestamp: _UnixSeconds | None = Field(
        default=None,
        description="Unix seconds when the user gave the rating. Must be no more than "
        "`max_future_skew_seconds` (default 300) ahead of the server clock nor older than retention.",
    )

    rating: int
    scale: str

    def rating_label(self) -> RatingLabel:
        """Map the raw rating onto the three-valued label the metrics use."""
        return normalise_rating(self.scale, self.rating)

    def score(self) -> float:
        """The rating on a 0-1 scale (0 worst), stored for analysis beyond the three labels."""
        if self.scale == "thumbs":
            return 1.0 if self.rating > 0 else 0.0
        return (self.rating - 1) / 4.0


class ThumbsEvent(_EventBase):
    """A thumbs up (1) or down (-1)."""

    scale: Literal["thumbs"] = Field(description="`thumbs`: rating is -1 or 1.")
    rating: _Thumb = Field(description="-1 (thumbs down) or 1 (thumbs up).")


class StarsEvent(_EventBase):
    """A 1-5 star rating: 4-5 positive, 3 neutral, 1-2 negative."""

    scale: Literal["stars"] = Field(description="`stars`: rating is 1 to 5.")
    rating: _Star = Field(description="1 to 5 stars.")


FeedbackEvent = Annotated[ThumbsEvent | StarsEvent, Field(discriminator="scale")]
"""One user judgement of one vLLM response; `scale` selects how `rating` reads."""


class FeedbackBatch(BaseModel):
    """A batch body: `{"events": [...]}` with 1 to 1,000 events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    events: list[FeedbackEvent] = Field(min_length=1, max_length=1000)


_EVENT = TypeAdapter(FeedbackEvent)
_FIELDS = frozenset(ThumbsEvent.model_fields) | frozenset(StarsEvent.model_fields) | {"events"}


def normalise_rating(scale: str, rating: int) -> RatingLabel:
    """Thumbs up / 4-5 stars → positive, 3 stars → neutral, thumbs down / 1-2 stars → negative."""
    if scale == "thumbs":
        return "positive" if rating > 0 else "negative"
    if rating >= 4:
        return "positive"
    if rating == 3:
        return "neutral"
    return "negative"


class BadRequest(Exception):
    """A client error with the field it concerns and the rejection reason used for the metric."""

    def __init__(self, reason: str, field: str | None, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.reason = reason
        self.field = field
        self.detail = detail
        self.status = status


def _loc_to_field(loc: tuple[int | str, ...], unknown_last: bool = False) -> str:
    """Render a pydantic error location as `events[3].rating`; `unknown_last` keeps an unknown last key."""
    out = ""
    for n, part in enumerate(loc):
        if isinstance(part, str) and part not in _FIELDS and not (unknown_last and n == len(loc) - 1):
            continue  # a union member's tag pydantic inserts (`stars`, `float`, ...), not a field
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def _reject_constant(name: str) -> float:
    """json.loads hook: NaN/Infinity are not JSON, and a NaN rating must never reach the store."""
    raise BadRequest("malformed_json", None, f"invalid JSON constant {name}")


MAX_INTEGER_DIGITS = 20
"""Longest integer literal accepted (int64 and uint64 fit); a longer one is refused before Python converts
it (a 5,000-digit literal otherwise failed with Python's own message about its conversion limit)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads hook: a key given twice is ambiguous (which rating did the client mean?), so refuse it
    rather than keep the last one silently, as json.loads would."""
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise BadRequest("malformed_json", key, f"duplicate key {key!r} in a JSON object")
        doc[key] = value
    return doc


def _bounded_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise BadRequest("malformed_json", None, f"number too large: integers have at most {MAX_INTEGER_DIGITS} "
                         "digits")
    return int(literal)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # 1e999 parses as inf: as unusable as NaN
        raise BadRequest("malformed_json", None, "number too large: beyond the range of a 64-bit float")
    return value


def parse_body(raw: bytes, max_batch: int) -> tuple[list[ThumbsEvent | StarsEvent], bool]:
    """Parse a body (one event object, or `{"events": [...]}`) into validated events and a batch flag."""
    try:
        # decoded here, strictly: json.loads on bytes guesses UTF-16/32 from the first bytes and took a UTF-16
        # body the API documents as refused ("not UTF-8 → 400 malformed_json"); a UTF-8 BOM is allowed (RFC 8259)
        doc: Any = json.loads(raw.decode("utf-8-sig"), parse_constant=_reject_constant, object_pairs_hook=_unique_keys,
                              parse_int=_bounded_int, parse_float=_finite_float)
    except BadRequest:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("malformed_json", None, f"body is not valid JSON: {exc}") from None
    except RecursionError:
        # json.loads recurses per nesting level: `[[[[…` within the body cap raised out of here as a 500
        # (tests/corpus/fuzz/feedback/deep-nesting.json). No event nests more than two levels.
        raise BadRequest("malformed_json", None, "body is nested too deeply") from None
    if not isinstance(doc, dict):
        raise BadRequest("validation", "body", 'body must be a JSON object (an event, or {"events": [...]})')
    if "events" in doc:
        items = doc.get("events")
        if isinstance(items, list) and len(items) > max_batch:
            raise BadRequest(
                "batch_too_large",
                "events",
                f"batch of {len(items)} events exceeds the limit of {max_batch}",
                status=413,
            )
        try:
            return list(FeedbackBatch.model_validate(doc).events), True
        except ValidationError as exc:
            raise _as_bad_request(exc) from None
    try:
        return [_EVENT.validate_python(doc)], False
    except ValidationError as exc:
        raise _as_bad_request(exc) from None


def _as_bad_request(exc: ValidationError) -> BadRequest:
    """Turn the first pydantic error into a 400 naming its field."""
    err = exc.errors(include_url=False)[0]
    loc = tuple(err["loc"])
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc = (*loc, "scale")
    field = _loc_to_field(loc, unknown_last=err["type"] == "extra_forbidden")
    return BadRequest("validation", field, f"{field}: {err['msg']}")


def check_timestamp(
    event: ThumbsEvent | StarsEvent, index: int | None, now: float, max_future_skew: float, retention: float
) -> None:
    """Clock-skew rule: reject a timestamp too far ahead of the server clock or older than retention.

    The server never windows on the client timestamp (it uses its own receive time), so a skewed
    client cannot move events between windows; the rule only keeps the stored timestamp meaningful.
    """
    ts = event.timestamp
    if ts is None:
        return
    field = "timestamp" if index is None else f"events[{index}].timestamp"
    if not math.isfinite(ts) or ts > now + max_future_skew:
        raise BadRequest("clock_skew", field, f"{field}: more than {max_future_skew:g}s in the future")
    if ts < now - retention:
        raise BadRequest("clock_skew", field, f"{field}: older than the retention window ({retention:g}s)")


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An authenticated, validated event ready for the store (app resolved from the token)."""

    app: str
    request_id: str
    model: str
    endpoint: str | None
    rating: int
    scale: str
    label: RatingLabel
    score: float
    categories: str | None
    ttft_ms: float | None
    e2e_ms: float | None
    client_ts: float | None
    received_at: float

    @classmethod
    def from_event(cls, event: ThumbsEvent | StarsEvent, app: str, received_at: float) -> StoredEvent:
        """The row for a validated event, with the app the token resolved and the server's receive time."""
        return cls(
            app=app,
            request_id=event.request_id,
            model=event.model,
            endpoint=event.endpoint,
            rating=event.rating,
            scale=event.scale,
            label=event.rating_label(),
            score=event.score(),
            categories=json.dumps(event.categories) if event.categories else None,
            ttft_ms=float(event.ttft_ms) if event.ttft_ms is not None else None,
            e2e_ms=float(event.e2e_ms) if event.e2e_ms is not None else None,
            client_ts=float(event.timestamp) if event.timestamp is not None else None,
            received_at=received_at,
        )
