package statefunworkers.runner;

import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.statefun.extensions.ComponentBinder;
import org.apache.flink.statefun.extensions.ComponentJsonFormatException;
import org.apache.flink.statefun.extensions.ComponentJsonObject;
import org.apache.flink.statefun.extensions.ExtensionModule;
import org.apache.flink.statefun.flink.io.datastream.SinkFunctionSpec;
import org.apache.flink.statefun.sdk.TypeName;
import org.apache.flink.statefun.sdk.io.EgressIdentifier;
import org.apache.flink.statefun.sdk.reqreply.generated.TypedValue;

/**
 * Lets a module.yaml written for a real deployment load here unchanged: its Kafka, Kinesis and playground
 * components are accepted, every egress is bound to {@link KeepingSink}, and ingress components are left
 * unconnected (the runner's HTTP ingress takes messages for any address instead).
 */
public final class IoComponents implements ExtensionModule {
  private static final String PLAYGROUND_EGRESS = "io.statefun.playground/egress";
  private static final Set<String> REPORTED = ConcurrentHashMap.newKeySet();

  @Override
  public void configure(Map<String, String> globalConfigurations, Binder binder) {
    for (String kind :
        new String[] {
          "io.statefun.kafka.v1/ingress",
          "io.statefun.kinesis.v1/ingress",
          "io.statefun.playground.v1/ingress"
        }) {
      binder.bindExtension(TypeName.parseFrom(kind), (ComponentBinder) IoComponents::ignoreIngress);
    }
    for (String kind : new String[] {"io.statefun.kafka.v1/egress", "io.statefun.kinesis.v1/egress"}) {
      binder.bindExtension(TypeName.parseFrom(kind), (ComponentBinder) IoComponents::bindEgressById);
    }
    // The playground's egress has a fixed id and no `id` field.
    binder.bindExtension(
        TypeName.parseFrom("io.statefun.playground.v1/egress"),
        (ComponentBinder) (component, moduleBinder) -> bindEgress(PLAYGROUND_EGRESS, moduleBinder));
  }

  private static void ignoreIngress(
      ComponentJsonObject component,
      org.apache.flink.statefun.sdk.spi.StatefulFunctionModule.Binder moduleBinder) {
    String id = component.specJsonNode().path("id").asText(component.binderTypename().toString());
    // The module is loaded again by every task (re)start; say it once.
    if (REPORTED.add(id)) {
      System.out.println(
          "statefun runner: ingress " + id
              + " is not connected here; send messages with POST /{namespace}/{type}/{id}");
    }
  }

  private static void bindEgressById(
      ComponentJsonObject component,
      org.apache.flink.statefun.sdk.spi.StatefulFunctionModule.Binder moduleBinder) {
    JsonNode id = component.specJsonNode().get("id");
    if (id == null || !id.isTextual()) {
      throw new ComponentJsonFormatException("egress component without a string `id`: " + component);
    }
    bindEgress(id.asText(), moduleBinder);
  }

  private static void bindEgress(
      String id, org.apache.flink.statefun.sdk.spi.StatefulFunctionModule.Binder moduleBinder) {
    TypeName name = TypeName.parseFrom(id);
    moduleBinder.bindEgress(
        new SinkFunctionSpec<>(
            new EgressIdentifier<>(name.namespace(), name.name(), TypedValue.class),
            new KeepingSink(id)));
  }
}
