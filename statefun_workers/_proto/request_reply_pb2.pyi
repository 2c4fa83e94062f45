# Generated from protos/ by scripts/gen_protos.py (protoc 3.21). DO NOT EDIT.
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Address(_message.Message):
    __slots__ = ["id", "namespace", "type"]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    id: str
    namespace: str
    type: str
    def __init__(self, namespace: _Optional[str] = ..., type: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class FromFunction(_message.Message):
    __slots__ = ["incomplete_invocation_context", "invocation_result"]
    class DelayedInvocation(_message.Message):
        __slots__ = ["argument", "cancellation_token", "delay_in_ms", "is_cancellation_request", "target"]
        ARGUMENT_FIELD_NUMBER: _ClassVar[int]
        CANCELLATION_TOKEN_FIELD_NUMBER: _ClassVar[int]
        DELAY_IN_MS_FIELD_NUMBER: _ClassVar[int]
        IS_CANCELLATION_REQUEST_FIELD_NUMBER: _ClassVar[int]
        TARGET_FIELD_NUMBER: _ClassVar[int]
        argument: TypedValue
        cancellation_token: str
        delay_in_ms: int
        is_cancellation_request: bool
        target: Address
        def __init__(self, is_cancellation_request: bool = ..., cancellation_token: _Optional[str] = ..., delay_in_ms: _Optional[int] = ..., target: _Optional[_Union[Address, _Mapping]] = ..., argument: _Optional[_Union[TypedValue, _Mapping]] = ...) -> None: ...
    class EgressMessage(_message.Message):
        __slots__ = ["argument", "egress_namespace", "egress_type"]
        ARGUMENT_FIELD_NUMBER: _ClassVar[int]
        EGRESS_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
        EGRESS_TYPE_FIELD_NUMBER: _ClassVar[int]
        argument: TypedValue
        egress_namespace: str
        egress_type: str
        def __init__(self, egress_namespace: _Optional[str] = ..., egress_type: _Optional[str] = ..., argument: _Optional[_Union[TypedValue, _Mapping]] = ...) -> None: ...
    class ExpirationSpec(_message.Message):
        __slots__ = ["expire_after_millis", "mode"]
        class ExpireMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = []
        AFTER_INVOKE: FromFunction.ExpirationSpec.ExpireMode
        AFTER_WRITE: FromFunction.ExpirationSpec.ExpireMode
        EXPIRE_AFTER_MILLIS_FIELD_NUMBER: _ClassVar[int]
        MODE_FIELD_NUMBER: _ClassVar[int]
        NONE: FromFunction.ExpirationSpec.ExpireMode
        expire_after_millis: int
        mode: FromFunction.ExpirationSpec.ExpireMode
        def __init__(self, mode: _Optional[_Union[FromFunction.ExpirationSpec.ExpireMode, str]] = ..., expire_after_millis: _Optional[int] = ...) -> None: ...
    class IncompleteInvocationContext(_message.Message):
        __slots__ = ["missing_values"]
        MISSING_VALUES_FIELD_NUMBER: _ClassVar[int]
        missing_values: _containers.RepeatedCompositeFieldContainer[FromFunction.PersistedValueSpec]
        def __init__(self, missing_values: _Optional[_Iterable[_Union[FromFunction.PersistedValueSpec, _Mapping]]] = ...) -> None: ...
    class Invocation(_message.Message):
        __slots__ = ["argument", "target"]
        ARGUMENT_FIELD_NUMBER: _ClassVar[int]
        TARGET_FIELD_NUMBER: _ClassVar[int]
        argument: TypedValue
        target: Address
        def __init__(self, target: _Optional[_Union[Address, _Mapping]] = ..., argument: _Optional[_Union[TypedValue, _Mapping]] = ...) -> None: ...
    class InvocationResponse(_message.Message):
        __slots__ = ["delayed_invocations", "outgoing_egresses", "outgoing_messages", "state_mutations"]
        DELAYED_INVOCATIONS_FIELD_NUMBER: _ClassVar[int]
        OUTGOING_EGRESSES_FIELD_NUMBER: _ClassVar[int]
        OUTGOING_MESSAGES_FIELD_NUMBER: _ClassVar[int]
        STATE_MUTATIONS_FIELD_NUMBER: _ClassVar[int]
        delayed_invocations: _containers.RepeatedCompositeFieldContainer[FromFunction.DelayedInvocation]
        outgoing_egresses: _containers.RepeatedCompositeFieldContainer[FromFunction.EgressMessage]
        outgoing_messages: _containers.RepeatedCompositeFieldContainer[FromFunction.Invocation]
        state_mutations: _containers.RepeatedCompositeFieldContainer[FromFunction.PersistedValueMutation]
        def __init__(self, state_mutations: _Optional[_Iterable[_Union[FromFunction.PersistedValueMutation, _Mapping]]] = ..., outgoing_messages: _Optional[_Iterable[_Union[FromFunction.Invocation, _Mapping]]] = ..., delayed_invocations: _Optional[_Iterable[_Union[FromFunction.DelayedInvocation, _Mapping]]] = ..., outgoing_egresses: _Optional[_Iterable[_Union[FromFunction.EgressMessage, _Mapping]]] = ...) -> None: ...
    class PersistedValueMutation(_message.Message):
        __slots__ = ["mutation_type", "state_name", "state_value"]
        class MutationType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = []
        DELETE: FromFunction.PersistedValueMutation.MutationType
        MODIFY: FromFunction.PersistedValueMutation.MutationType
        MUTATION_TYPE_FIELD_NUMBER: _ClassVar[int]
        STATE_NAME_FIELD_NUMBER: _ClassVar[int]
        STATE_VALUE_FIELD_NUMBER: _ClassVar[int]
        mutation_type: FromFunction.PersistedValueMutation.MutationType
        state_name: str
        state_value: TypedValue
        def __init__(self, mutation_type: _Optional[_Union[FromFunction.PersistedValueMutation.MutationType, str]] = ..., state_name: _Optional[str] = ..., state_value: _Optional[_Union[TypedValue, _Mapping]] = ...) -> None: ...
    class PersistedValueSpec(_message.Message):
        __slots__ = ["expiration_spec", "state_name", "type_typename"]
        EXPIRATION_SPEC_FIELD_NUMBER: _ClassVar[int]
        STATE_NAME_FIELD_NUMBER: _ClassVar[int]
        TYPE_TYPENAME_FIELD_NUMBER: _ClassVar[int]
        expiration_spec: FromFunction.ExpirationSpec
        state_name: str
        type_typename: str
        def __init__(self, state_name: _Optional[str] = ..., expiration_spec: _Optional[_Union[FromFunction.ExpirationSpec, _Mapping]] = ..., type_typename: _Optional[str] = ...) -> None: ...
    INCOMPLETE_INVOCATION_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_RESULT_FIELD_NUMBER: _ClassVar[int]
    incomplete_invocation_context: FromFunction.IncompleteInvocationContext
    invocation_result: FromFunction.InvocationResponse
    def __init__(self, invocation_result: _Optional[_Union[FromFunction.InvocationResponse, _Mapping]] = ..., incomplete_invocation_context: _Optional[_Union[FromFunction.IncompleteInvocationContext, _Mapping]] = ...) -> None: ...

class ToFunction(_message.Message):
    __slots__ = ["invocation"]
    class Invocation(_message.Message):
        __slots__ = ["argument", "caller"]
        ARGUMENT_FIELD_NUMBER: _ClassVar[int]
        CALLER_FIELD_NUMBER: _ClassVar[int]
        argument: TypedValue
        caller: Address
        def __init__(self, caller: _Optional[_Union[Address, _Mapping]] = ..., argument: _Optional[_Union[TypedValue, _Mapping]] = ...) -> None: ...
    class InvocationBatchRequest(_message.Message):
        __slots__ = ["invocations", "state", "target"]
        INVOCATIONS_FIELD_NUMBER: _ClassVar[int]
        STATE_FIELD_NUMBER: _ClassVar[int]
        TARGET_FIELD_NUMBER: _ClassVar[int]
        invocations: _containers.RepeatedCompositeFieldContainer[ToFunction.Invocation]
        state: _containers.RepeatedCompositeFieldContainer[ToFunction.PersistedValue]
        target: Address
        def __init__(self, target: _Optional[_Union[Address, _Mapping]] = ..., state: _Optional[_Iterable[_Union[ToFunction.PersistedValue, _Mapping]]] = ..., invocations: _Optional[_Iterable[_Union[ToFunction.Invocation, _Mapping]]] = ...) -> None: ...
    class PersistedValue(_message.Message):
        __slots__ = ["state_name", "state_value"]
        STATE_NAME_FIELD_NUMBER: _ClassVar[int]
        STATE_VALUE_FIELD_NUMBER: _ClassVar[int]
        state_name: str
        state_value: TypedValue
        def __init__(self, state_name: _Optional[str] = ..., state_value: _Optional[_Union[TypedValue, _Mapping]] = ...) -> None: ...
    INVOCATION_FIELD_NUMBER: _ClassVar[int]
    invocation: ToFunction.InvocationBatchRequest
    def __init__(self, invocation: _Optional[_Union[ToFunction.InvocationBatchRequest, _Mapping]] = ...) -> None: ...

class TypedValue(_message.Message):
    __slots__ = ["has_value", "typename", "value"]
    HAS_VALUE_FIELD_NUMBER: _ClassVar[int]
    TYPENAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    has_value: bool
    typename: str
    value: bytes
    def __init__(self, typename: _Optional[str] = ..., has_value: bool = ..., value: _Optional[bytes] = ...) -> None: ...
