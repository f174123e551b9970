from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Answer(_message.Message):
    __slots__ = ("key", "metric_name", "target", "code", "message", "value", "active", "valid_until")
    KEY_FIELD_NUMBER: _ClassVar[int]
    METRIC_NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    metric_name: str
    target: float
    code: int
    message: str
    value: float
    active: bool
    valid_until: float
    def __init__(self, key: _Optional[bytes] = ..., metric_name: _Optional[str] = ..., target: _Optional[float] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., value: _Optional[float] = ..., active: _Optional[bool] = ..., valid_until: _Optional[float] = ...) -> None: ...

class AnswerTable(_message.Message):
    __slots__ = ("answers", "written_at", "max_age_seconds", "serving", "version")
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[Answer]
    written_at: float
    max_age_seconds: float
    serving: bool
    version: int
    def __init__(self, answers: _Optional[_Iterable[_Union[Answer, _Mapping]]] = ..., written_at: _Optional[float] = ..., max_age_seconds: _Optional[float] = ..., serving: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...
