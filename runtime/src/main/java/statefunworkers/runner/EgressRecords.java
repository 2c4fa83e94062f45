package statefunworkers.runner;

import com.google.protobuf.ByteString;
import com.google.protobuf.CodedInputStream;
import com.google.protobuf.WireFormat;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.statefun.sdk.reqreply.generated.TypedValue;

/**
 * Every record the functions sent to an egress, kept per topic for the life of the JVM.
 *
 * <p>The topic is the Kafka record's topic, the Kinesis record's stream, the playground record's topic, or
 * else the egress id. Records survive job restarts, so, as with any non-transactional sink, a record sent
 * just before a failure may appear twice (at-least-once).
 */
final class EgressRecords {
  static final EgressRecords INSTANCE = new EgressRecords();

  static final String KAFKA = "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord";
  static final String KINESIS = "type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord";
  static final String PLAYGROUND = "io.statefun.playground/EgressRecord";

  private static final ObjectMapper JSON = new ObjectMapper();

  /** One egress record as the caller reads it. */
  static final class Record {
    final String egress;
    final String topic;
    final String key;
    final String typename;
    final byte[] value;

    Record(String egress, String topic, String key, String typename, byte[] value) {
      this.egress = egress;
      this.topic = topic;
      this.key = key;
      this.typename = typename;
      this.value = value;
    }
  }

  private final Map<String, List<Record>> byTopic = new LinkedHashMap<>();
  private final Map<String, Integer> popped = new HashMap<>();
  private long total;
  private long dropped;
  private long capacity = 1_000_000;

  synchronized void setCapacity(long capacity) {
    this.capacity = capacity;
  }

  /** Keeps what arrived at egress {@code egressId}; records beyond the capacity are counted, not kept. */
  void keep(String egressId, TypedValue value) throws IOException {
    Record record = decode(egressId, value);
    synchronized (this) {
      if (total >= capacity) {
        dropped++;
        return;
      }
      byTopic.computeIfAbsent(record.topic, t -> new ArrayList<>()).add(record);
      total++;
    }
  }

  /** The next record of {@code topic} not yet popped (the playground's GET), or null. */
  synchronized Record pop(String topic) {
    List<Record> records = byTopic.getOrDefault(topic, List.of());
    int next = popped.getOrDefault(topic, 0);
    if (next >= records.size()) {
      return null;
    }
    popped.put(topic, next + 1);
    return records.get(next);
  }

  /** Every record of {@code topic}, popped or not. */
  synchronized List<Record> all(String topic) {
    return new ArrayList<>(byTopic.getOrDefault(topic, List.of()));
  }

  synchronized List<String> topics() {
    return new ArrayList<>(byTopic.keySet());
  }

  synchronized long total() {
    return total;
  }

  synchronized long dropped() {
    return dropped;
  }

  static Record decode(String egressId, TypedValue value) throws IOException {
    String typename = value.getTypename();
    byte[] bytes = value.getValue().toByteArray();
    if (typename.equals(KAFKA) || typename.equals(KINESIS)) {
      // KafkaProducerRecord {key = 1, value_bytes = 2, topic = 3}; KinesisEgressRecord {partition_key = 1,
      // value_bytes = 2, stream = 3, explicit_hash_key = 4}: the same three fields that matter here.
      Map<Integer, ByteString> fields = lengthDelimitedFields(bytes);
      String key = fields.getOrDefault(1, ByteString.EMPTY).toStringUtf8();
      return new Record(
          egressId,
          fields.getOrDefault(3, ByteString.EMPTY).toStringUtf8(),
          key.isEmpty() ? null : key,
          typename,
          fields.getOrDefault(2, ByteString.EMPTY).toByteArray());
    }
    if (typename.equals(PLAYGROUND)) {
      JsonNode node = JSON.readTree(bytes);
      return new Record(
          egressId,
          node.path("topic").asText(),
          null,
          typename,
          node.path("payload").asText().getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }
    return new Record(egressId, egressId, null, typename, bytes);
  }

  private static Map<Integer, ByteString> lengthDelimitedFields(byte[] bytes) throws IOException {
    Map<Integer, ByteString> fields = new HashMap<>();
    CodedInputStream in = CodedInputStream.newInstance(bytes);
    for (int tag = in.readTag(); tag != 0; tag = in.readTag()) {
      if (WireFormat.getTagWireType(tag) == WireFormat.WIRETYPE_LENGTH_DELIMITED) {
        fields.put(WireFormat.getTagFieldNumber(tag), in.readBytes());
      } else {
        in.skipField(tag);
      }
    }
    return fields;
  }
}
