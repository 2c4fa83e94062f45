package statefunworkers.runner;

/**
 * One message taken by the HTTP ingress: the target address and the argument's typename and bytes.
 *
 * <p>A plain POJO (public fields, no-arg constructor) so that Flink serializes it without Kryo; the
 * argument becomes a protobuf {@code TypedValue} only in the router.
 */
public final class Envelope {
  public String namespace;
  public String type;
  public String id;
  public String typename;
  public byte[] value;

  public Envelope() {}

  Envelope(String namespace, String type, String id, String typename, byte[] value) {
    this.namespace = namespace;
    this.type = type;
    this.id = id;
    this.typename = typename;
    this.value = value;
  }
}
