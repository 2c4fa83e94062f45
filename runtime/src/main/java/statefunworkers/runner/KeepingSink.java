package statefunworkers.runner;

import org.apache.flink.statefun.sdk.reqreply.generated.TypedValue;
import org.apache.flink.streaming.api.functions.sink.SinkFunction;

/** The sink bound to every egress a module declares: hands each record to {@link EgressRecords}. */
final class KeepingSink implements SinkFunction<TypedValue> {
  private static final long serialVersionUID = 1L;

  private final String egressId;

  KeepingSink(String egressId) {
    this.egressId = egressId;
  }

  @Override
  public void invoke(TypedValue value, Context context) throws Exception {
    EgressRecords.INSTANCE.keep(egressId, value);
  }
}
