package statefunworkers.runner;

import com.google.protobuf.ByteString;
import java.util.Map;
import org.apache.flink.statefun.flink.io.datastream.SourceFunctionSpec;
import org.apache.flink.statefun.sdk.Address;
import org.apache.flink.statefun.sdk.FunctionType;
import org.apache.flink.statefun.sdk.io.IngressIdentifier;
import org.apache.flink.statefun.sdk.io.Router;
import org.apache.flink.statefun.sdk.reqreply.generated.TypedValue;
import org.apache.flink.statefun.sdk.spi.StatefulFunctionModule;

/**
 * Binds the runner's one ingress (the HTTP ingress log) and routes each message to the address it names.
 *
 * <p>Remote functions take a {@code TypedValue} argument, which the router builds from the envelope.
 */
public final class RunnerModule implements StatefulFunctionModule {
  static final IngressIdentifier<Envelope> INGRESS =
      new IngressIdentifier<>(Envelope.class, "statefun-workers", "http-ingress");

  @Override
  public void configure(Map<String, String> globalConfiguration, Binder binder) {
    binder.bindIngress(new SourceFunctionSpec<>(INGRESS, new HttpIngressSource()));
    binder.bindIngressRouter(INGRESS, new EnvelopeRouter());
  }

  private static final class EnvelopeRouter implements Router<Envelope> {
    @Override
    @SuppressWarnings({"unchecked", "rawtypes"})
    public void route(Envelope message, Downstream<Envelope> downstream) {
      TypedValue argument =
          TypedValue.newBuilder()
              .setTypename(message.typename)
              .setHasValue(true)
              .setValue(ByteString.copyFrom(message.value))
              .build();
      Address target = new Address(new FunctionType(message.namespace, message.type), message.id);
      // NOTE: Downstream is typed by the ingress type, but it hands on any payload; remote functions need a
      // TypedValue.
      ((Downstream) downstream).forward(target, argument);
    }
  }
}
