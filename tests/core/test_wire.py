"""The hand-written protobuf encoders emit exactly what the generated classes emit."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from statefun_workers import _wire
from statefun_workers._proto import kafka_egress_pb2, kinesis_egress_pb2
from statefun_workers._proto.request_reply_pb2 import Address, FromFunction, TypedValue
from statefun_workers.context import encoded_target

text = st.text(max_size=40) | st.text(min_size=120, max_size=300)
data = st.binary(max_size=40) | st.binary(min_size=120, max_size=20000)
int64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)


@given(st.integers(min_value=0, max_value=(1 << 64) - 1) | st.integers(min_value=100, max_value=17000))
def test_varint_matches_protobuf(value):
    message = FromFunction.ExpirationSpec(expire_after_millis=value - (1 << 64) if value >= 1 << 63 else value)
    assert message.SerializeToString() == (b"\x10" + _wire.varint(value) if value else b"")


@given(text, data)
def test_present_typed_value(typename, value):
    expected = TypedValue(typename=typename, has_value=True, value=value).SerializeToString()
    assert _wire.present_value(typename, value) == expected
    assert _wire.with_value(_wire.value_prefix(typename), value) == expected


@given(text.filter(lambda t: "/" in t.rstrip("/")[1:] if t else False), text)
def test_address(typename, id):
    """An Address as responses write it: the target's cached namespace and type fields, then the id."""
    namespace, _, type = typename.rpartition("/")
    if not namespace or not type:
        return
    encoded = encoded_target(typename) + _wire.optional_str(b"\x1a", id)
    assert encoded == Address(namespace=namespace, type=type, id=id).SerializeToString()


@given(text, text, data)
def test_mutations(name, typename, value):
    tv = TypedValue(typename=typename, has_value=True, value=value)
    modify = FromFunction.PersistedValueMutation(
        mutation_type=FromFunction.PersistedValueMutation.MODIFY, state_name=name, state_value=tv)
    encoded = _wire.modify_prefix(name) + _wire.field_bytes(b"\x1a", tv.SerializeToString())
    assert encoded == modify.SerializeToString()
    delete = FromFunction.PersistedValueMutation(state_name=name)
    assert _wire.delete_mutation(name) == delete.SerializeToString()


@given(text, text, text, text, data, int64.filter(lambda v: v >= 0), text)
def test_invocations(namespace, type, id, typename, value, delay, token):
    target = Address(namespace=namespace, type=type, id=id)
    argument = TypedValue(typename=typename, has_value=True, value=value)
    invocation = FromFunction.Invocation(target=target, argument=argument)
    assert (_wire.invocation(target.SerializeToString(), argument.SerializeToString())
            == invocation.SerializeToString())
    delayed = FromFunction.DelayedInvocation(delay_in_ms=delay, target=target, argument=argument,
                                             cancellation_token=token)
    assert (_wire.delayed_invocation(delay, target.SerializeToString(), argument.SerializeToString(), token)
            == delayed.SerializeToString())
    cancellation = FromFunction.DelayedInvocation(is_cancellation_request=True, cancellation_token=token)
    assert _wire.cancellation(token) == cancellation.SerializeToString()


@given(text, text, text, data)
def test_egress(namespace, type, typename, value):
    argument = TypedValue(typename=typename, has_value=True, value=value)
    egress = FromFunction.EgressMessage(egress_namespace=namespace, egress_type=type, argument=argument)
    target = _wire.optional_str(b"\x0a", namespace) + _wire.optional_str(b"\x12", type)
    assert _wire.egress(target, argument.SerializeToString()) == egress.SerializeToString()


@given(text, st.sampled_from([0, 1, 2]), int64.filter(lambda v: v >= 0), text)
def test_missing_value_spec(name, mode, millis, typename):
    spec = FromFunction.PersistedValueSpec(
        state_name=name, type_typename=typename,
        expiration_spec=FromFunction.ExpirationSpec(mode=mode, expire_after_millis=millis))
    encoded = _wire.persisted_value_spec(name, _wire.expiration_spec(mode, millis), typename)
    assert encoded == spec.SerializeToString()


@given(text, data, text, text)
def test_egress_records(key, value, topic, hash_key):
    kafka = kafka_egress_pb2.KafkaProducerRecord(key=key, value_bytes=value, topic=topic)
    assert _wire.kafka_producer_record(key, value, topic) == kafka.SerializeToString()
    kinesis = kinesis_egress_pb2.KinesisEgressRecord(
        partition_key=key, value_bytes=value, stream=topic, explicit_hash_key=hash_key)
    assert _wire.kinesis_egress_record(key, value, topic, hash_key) == kinesis.SerializeToString()


@settings(max_examples=50)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_framing_of_repeated_fields(items):
    response = FromFunction.InvocationResponse()
    for item in items:
        response.outgoing_egresses.add().argument.value = item
    parts = [_wire.field_bytes(_wire.OUTGOING_EGRESS, egress.SerializeToString())
             for egress in response.outgoing_egresses]
    assert b"".join(parts) == response.SerializeToString()
