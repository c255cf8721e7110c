from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
PRESENCE_EVENT_KIND_JOIN: PresenceEventKind
PRESENCE_EVENT_KIND_LEAVE: PresenceEventKind
PRESENCE_EVENT_KIND_UNSPECIFIED: PresenceEventKind

class CommandReply(_message.Message):
    __slots__ = ["error", "id", "join", "leave", "refresh"]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    JOIN_FIELD_NUMBER: _ClassVar[int]
    LEAVE_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    error: Error
    id: str
    join: JoinResult
    leave: LeaveResult
    refresh: RefreshResult
    def __init__(self, id: _Optional[str] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., join: _Optional[_Union[JoinResult, _Mapping]] = ..., leave: _Optional[_Union[LeaveResult, _Mapping]] = ..., refresh: _Optional[_Union[RefreshResult, _Mapping]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ["code", "message", "retry_after"]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    retry_after: _duration_pb2.Duration
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., retry_after: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class HistoryRequest(_message.Message):
    __slots__ = ["after", "limit", "newest_first", "room"]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    NEWEST_FIRST_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    after: int
    limit: int
    newest_first: bool
    room: str
    def __init__(self, room: _Optional[str] = ..., after: _Optional[int] = ..., limit: _Optional[int] = ..., newest_first: bool = ...) -> None: ...

class HistoryResponse(_message.Message):
    __slots__ = ["epoch", "messages", "offset"]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    epoch: str
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    offset: int
    def __init__(self, messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., offset: _Optional[int] = ..., epoch: _Optional[str] = ...) -> None: ...

class JoinCommand(_message.Message):
    __slots__ = ["info", "position", "presence", "presence_events", "room"]
    class InfoEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INFO_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_EVENTS_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    info: _containers.ScalarMap[str, str]
    position: Position
    presence: bool
    presence_events: bool
    room: str
    def __init__(self, room: _Optional[str] = ..., position: _Optional[_Union[Position, _Mapping]] = ..., presence: bool = ..., info: _Optional[_Mapping[str, str]] = ..., presence_events: bool = ...) -> None: ...

class JoinResult(_message.Message):
    __slots__ = ["epoch", "offset", "recovered", "room"]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    RECOVERED_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    epoch: str
    offset: int
    recovered: bool
    room: str
    def __init__(self, room: _Optional[str] = ..., offset: _Optional[int] = ..., epoch: _Optional[str] = ..., recovered: bool = ...) -> None: ...

class LeaveCommand(_message.Message):
    __slots__ = ["room"]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: str
    def __init__(self, room: _Optional[str] = ...) -> None: ...

class LeaveResult(_message.Message):
    __slots__ = ["room"]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: str
    def __init__(self, room: _Optional[str] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ["info", "join_time", "session_id"]
    class InfoEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INFO_FIELD_NUMBER: _ClassVar[int]
    JOIN_TIME_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    info: _containers.ScalarMap[str, str]
    join_time: _timestamp_pb2.Timestamp
    session_id: str
    def __init__(self, session_id: _Optional[str] = ..., info: _Optional[_Mapping[str, str]] = ..., join_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ["content_type", "data", "headers", "offset", "publish_time", "publisher_session", "room", "text"]
    class HeadersEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_SESSION_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_TIME_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    content_type: str
    data: bytes
    headers: _containers.ScalarMap[str, str]
    offset: int
    publish_time: _timestamp_pb2.Timestamp
    publisher_session: str
    room: str
    text: str
    def __init__(self, room: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., text: _Optional[str] = ..., content_type: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., publish_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., publisher_session: _Optional[str] = ...) -> None: ...

class MessageBatch(_message.Message):
    __slots__ = ["messages", "presence"]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    presence: _containers.RepeatedCompositeFieldContainer[PresenceEvent]
    def __init__(self, messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., presence: _Optional[_Iterable[_Union[PresenceEvent, _Mapping]]] = ...) -> None: ...

class Position(_message.Message):
    __slots__ = ["epoch", "offset"]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    epoch: str
    offset: int
    def __init__(self, offset: _Optional[int] = ..., epoch: _Optional[str] = ...) -> None: ...

class PresenceEvent(_message.Message):
    __slots__ = ["kind", "member", "offset", "room"]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    kind: PresenceEventKind
    member: Member
    offset: int
    room: str
    def __init__(self, room: _Optional[str] = ..., kind: _Optional[_Union[PresenceEventKind, str]] = ..., member: _Optional[_Union[Member, _Mapping]] = ..., offset: _Optional[int] = ...) -> None: ...

class PresenceRequest(_message.Message):
    __slots__ = ["limit", "room"]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    limit: int
    room: str
    def __init__(self, room: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class PresenceResponse(_message.Message):
    __slots__ = ["members", "total"]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[Member]
    total: int
    def __init__(self, members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ["content_type", "data", "exclude_session", "headers", "idempotency_key", "room", "session_id", "text"]
    class HeadersEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_SESSION_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    content_type: str
    data: bytes
    exclude_session: str
    headers: _containers.ScalarMap[str, str]
    idempotency_key: str
    room: str
    session_id: str
    text: str
    def __init__(self, room: _Optional[str] = ..., data: _Optional[bytes] = ..., text: _Optional[str] = ..., content_type: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., session_id: _Optional[str] = ..., exclude_session: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class PublishResponse(_message.Message):
    __slots__ = ["epoch", "offset"]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    epoch: str
    offset: int
    def __init__(self, offset: _Optional[int] = ..., epoch: _Optional[str] = ...) -> None: ...

class PublishStreamItem(_message.Message):
    __slots__ = ["id", "publish"]
    ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    id: str
    publish: PublishRequest
    def __init__(self, id: _Optional[str] = ..., publish: _Optional[_Union[PublishRequest, _Mapping]] = ...) -> None: ...

class PublishStreamRequest(_message.Message):
    __slots__ = ["batch", "id", "publish"]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    batch: _containers.RepeatedCompositeFieldContainer[PublishStreamItem]
    id: str
    publish: PublishRequest
    def __init__(self, id: _Optional[str] = ..., publish: _Optional[_Union[PublishRequest, _Mapping]] = ..., batch: _Optional[_Iterable[_Union[PublishStreamItem, _Mapping]]] = ...) -> None: ...

class PublishStreamResponse(_message.Message):
    __slots__ = ["batch", "error", "id", "ok"]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    batch: _containers.RepeatedCompositeFieldContainer[PublishStreamResult]
    error: Error
    id: str
    ok: PublishResponse
    def __init__(self, id: _Optional[str] = ..., ok: _Optional[_Union[PublishResponse, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., batch: _Optional[_Iterable[_Union[PublishStreamResult, _Mapping]]] = ...) -> None: ...

class PublishStreamResult(_message.Message):
    __slots__ = ["error", "id", "ok"]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    error: Error
    id: str
    ok: PublishResponse
    def __init__(self, id: _Optional[str] = ..., ok: _Optional[_Union[PublishResponse, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class RefreshCommand(_message.Message):
    __slots__ = ["token"]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class RefreshResult(_message.Message):
    __slots__ = ["expire_time", "left_rooms"]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    LEFT_ROOMS_FIELD_NUMBER: _ClassVar[int]
    expire_time: _timestamp_pb2.Timestamp
    left_rooms: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, expire_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., left_rooms: _Optional[_Iterable[str]] = ...) -> None: ...

class SessionEvent(_message.Message):
    __slots__ = ["session_id"]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ["id", "join", "leave", "refresh"]
    ID_FIELD_NUMBER: _ClassVar[int]
    JOIN_FIELD_NUMBER: _ClassVar[int]
    LEAVE_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    id: str
    join: JoinCommand
    leave: LeaveCommand
    refresh: RefreshCommand
    def __init__(self, id: _Optional[str] = ..., join: _Optional[_Union[JoinCommand, _Mapping]] = ..., leave: _Optional[_Union[LeaveCommand, _Mapping]] = ..., refresh: _Optional[_Union[RefreshCommand, _Mapping]] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ["batch", "reply", "session"]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    batch: MessageBatch
    reply: CommandReply
    session: SessionEvent
    def __init__(self, session: _Optional[_Union[SessionEvent, _Mapping]] = ..., reply: _Optional[_Union[CommandReply, _Mapping]] = ..., batch: _Optional[_Union[MessageBatch, _Mapping]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ["rooms"]
    ROOMS_FIELD_NUMBER: _ClassVar[int]
    rooms: _containers.RepeatedCompositeFieldContainer[JoinCommand]
    def __init__(self, rooms: _Optional[_Iterable[_Union[JoinCommand, _Mapping]]] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ["batch", "reply", "session"]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    batch: MessageBatch
    reply: CommandReply
    session: SessionEvent
    def __init__(self, session: _Optional[_Union[SessionEvent, _Mapping]] = ..., reply: _Optional[_Union[CommandReply, _Mapping]] = ..., batch: _Optional[_Union[MessageBatch, _Mapping]] = ...) -> None: ...

class PresenceEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
