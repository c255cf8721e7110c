from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CloseRoomRequest(_message.Message):
    __slots__ = ["room"]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: str
    def __init__(self, room: _Optional[str] = ...) -> None: ...

class CloseRoomResponse(_message.Message):
    __slots__ = ["dropped_messages", "sessions"]
    DROPPED_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    dropped_messages: int
    sessions: int
    def __init__(self, sessions: _Optional[int] = ..., dropped_messages: _Optional[int] = ...) -> None: ...

class DisconnectSessionsRequest(_message.Message):
    __slots__ = ["reason", "session_id", "subject"]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    reason: str
    session_id: str
    subject: str
    def __init__(self, session_id: _Optional[str] = ..., subject: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DisconnectSessionsResponse(_message.Message):
    __slots__ = ["disconnected"]
    DISCONNECTED_FIELD_NUMBER: _ClassVar[int]
    disconnected: int
    def __init__(self, disconnected: _Optional[int] = ...) -> None: ...

class GetRoomRequest(_message.Message):
    __slots__ = ["room"]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: str
    def __init__(self, room: _Optional[str] = ...) -> None: ...

class GetRoomResponse(_message.Message):
    __slots__ = ["room", "sessions", "sessions_total"]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    room: RoomInfo
    sessions: _containers.RepeatedCompositeFieldContainer[SessionInfo]
    sessions_total: int
    def __init__(self, room: _Optional[_Union[RoomInfo, _Mapping]] = ..., sessions: _Optional[_Iterable[_Union[SessionInfo, _Mapping]]] = ..., sessions_total: _Optional[int] = ...) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class GetServerInfoResponse(_message.Message):
    __slots__ = ["counters", "engine", "go_version", "limits", "revision", "start_time", "uptime", "version"]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    GO_VERSION_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    UPTIME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    counters: ServerCounters
    engine: str
    go_version: str
    limits: ServerLimits
    revision: str
    start_time: _timestamp_pb2.Timestamp
    uptime: _duration_pb2.Duration
    version: str
    def __init__(self, version: _Optional[str] = ..., revision: _Optional[str] = ..., go_version: _Optional[str] = ..., start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., uptime: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., engine: _Optional[str] = ..., limits: _Optional[_Union[ServerLimits, _Mapping]] = ..., counters: _Optional[_Union[ServerCounters, _Mapping]] = ...) -> None: ...

class ListRoomsRequest(_message.Message):
    __slots__ = ["limit", "page_token", "prefix"]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    limit: int
    page_token: str
    prefix: str
    def __init__(self, limit: _Optional[int] = ..., page_token: _Optional[str] = ..., prefix: _Optional[str] = ...) -> None: ...

class ListRoomsResponse(_message.Message):
    __slots__ = ["next_page_token", "rooms", "total"]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ROOMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    next_page_token: str
    rooms: _containers.RepeatedCompositeFieldContainer[RoomInfo]
    total: int
    def __init__(self, rooms: _Optional[_Iterable[_Union[RoomInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ["limit", "page_token", "subject"]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    page_token: str
    subject: str
    def __init__(self, subject: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ["next_page_token", "sessions"]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    next_page_token: str
    sessions: _containers.RepeatedCompositeFieldContainer[SessionInfo]
    def __init__(self, sessions: _Optional[_Iterable[_Union[SessionInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RoomInfo(_message.Message):
    __slots__ = ["epoch", "last_publish_time", "name", "offset", "presence_members", "publish_rate", "retained_bytes", "retained_messages", "subscribers"]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LAST_PUBLISH_TIME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_RATE_FIELD_NUMBER: _ClassVar[int]
    RETAINED_BYTES_FIELD_NUMBER: _ClassVar[int]
    RETAINED_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    epoch: str
    last_publish_time: _timestamp_pb2.Timestamp
    name: str
    offset: int
    presence_members: int
    publish_rate: float
    retained_bytes: int
    retained_messages: int
    subscribers: int
    def __init__(self, name: _Optional[str] = ..., subscribers: _Optional[int] = ..., offset: _Optional[int] = ..., epoch: _Optional[str] = ..., retained_messages: _Optional[int] = ..., retained_bytes: _Optional[int] = ..., publish_rate: _Optional[float] = ..., presence_members: _Optional[int] = ..., last_publish_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ServerCounters(_message.Message):
    __slots__ = ["deduplicated", "delivered", "encoded", "panics", "published", "received", "reset_flood_closes", "retained_bytes", "rooms", "rooms_reclaimed", "sessions", "slow_consumers"]
    DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    PANICS_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    RESET_FLOOD_CLOSES_FIELD_NUMBER: _ClassVar[int]
    RETAINED_BYTES_FIELD_NUMBER: _ClassVar[int]
    ROOMS_FIELD_NUMBER: _ClassVar[int]
    ROOMS_RECLAIMED_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    SLOW_CONSUMERS_FIELD_NUMBER: _ClassVar[int]
    deduplicated: int
    delivered: int
    encoded: int
    panics: int
    published: int
    received: int
    reset_flood_closes: int
    retained_bytes: int
    rooms: int
    rooms_reclaimed: int
    sessions: int
    slow_consumers: int
    def __init__(self, published: _Optional[int] = ..., encoded: _Optional[int] = ..., received: _Optional[int] = ..., delivered: _Optional[int] = ..., slow_consumers: _Optional[int] = ..., rooms: _Optional[int] = ..., retained_bytes: _Optional[int] = ..., rooms_reclaimed: _Optional[int] = ..., deduplicated: _Optional[int] = ..., sessions: _Optional[int] = ..., panics: _Optional[int] = ..., reset_flood_closes: _Optional[int] = ...) -> None: ...

class ServerLimits(_message.Message):
    __slots__ = ["backlog_bytes", "backlog_messages", "command_rate", "history_messages", "history_ttl", "max_message_bytes", "max_retained_bytes", "max_rooms", "max_rooms_per_session", "max_streams", "max_streams_per_connection", "presence_members", "publish_rate", "write_timeout"]
    BACKLOG_BYTES_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    COMMAND_RATE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    HISTORY_TTL_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_RETAINED_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_ROOMS_FIELD_NUMBER: _ClassVar[int]
    MAX_ROOMS_PER_SESSION_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_PER_CONNECTION_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_RATE_FIELD_NUMBER: _ClassVar[int]
    WRITE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    backlog_bytes: int
    backlog_messages: int
    command_rate: float
    history_messages: int
    history_ttl: _duration_pb2.Duration
    max_message_bytes: int
    max_retained_bytes: int
    max_rooms: int
    max_rooms_per_session: int
    max_streams: int
    max_streams_per_connection: int
    presence_members: int
    publish_rate: float
    write_timeout: _duration_pb2.Duration
    def __init__(self, max_message_bytes: _Optional[int] = ..., max_rooms_per_session: _Optional[int] = ..., max_streams: _Optional[int] = ..., max_streams_per_connection: _Optional[int] = ..., write_timeout: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., backlog_messages: _Optional[int] = ..., backlog_bytes: _Optional[int] = ..., history_messages: _Optional[int] = ..., history_ttl: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., max_rooms: _Optional[int] = ..., max_retained_bytes: _Optional[int] = ..., publish_rate: _Optional[float] = ..., command_rate: _Optional[float] = ..., presence_members: _Optional[int] = ...) -> None: ...

class SessionInfo(_message.Message):
    __slots__ = ["credential", "expire_time", "messages_delivered", "peer", "rooms", "session_id", "start_time", "subject"]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_DELIVERED_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    ROOMS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    credential: str
    expire_time: _timestamp_pb2.Timestamp
    messages_delivered: int
    peer: str
    rooms: _containers.RepeatedCompositeFieldContainer[SessionRoom]
    session_id: str
    start_time: _timestamp_pb2.Timestamp
    subject: str
    def __init__(self, session_id: _Optional[str] = ..., subject: _Optional[str] = ..., credential: _Optional[str] = ..., peer: _Optional[str] = ..., start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., rooms: _Optional[_Iterable[_Union[SessionRoom, _Mapping]]] = ..., messages_delivered: _Optional[int] = ...) -> None: ...

class SessionRoom(_message.Message):
    __slots__ = ["offset", "room"]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    offset: int
    room: str
    def __init__(self, room: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...
