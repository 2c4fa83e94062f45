package statefunworkers.runner;

import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.functions.source.RichSourceFunction;

/** Emits the {@link IngressLog} into the job, checkpointing how far it got. */
final class HttpIngressSource extends RichSourceFunction<Envelope> implements CheckpointedFunction {
  private static final long serialVersionUID = 1L;

  /** How many times the job's source has started: 1, plus one per restart. */
  static final AtomicInteger STARTS = new AtomicInteger();

  private transient ListState<Long> offsetState;
  private long offset;
  private volatile boolean running = true;

  @Override
  public void initializeState(FunctionInitializationContext context) throws Exception {
    offsetState =
        context
            .getOperatorStateStore()
            .getListState(new ListStateDescriptor<>("ingress-offset", Long.class));
    offset = 0;
    for (Long restored : offsetState.get()) {
      offset = restored;
    }
    STARTS.incrementAndGet();
  }

  @Override
  public void snapshotState(FunctionSnapshotContext context) throws Exception {
    offsetState.update(List.of(offset));
  }

  @Override
  public void run(SourceContext<Envelope> context) throws Exception {
    while (running) {
      List<Envelope> batch = IngressLog.INSTANCE.readFrom(offset, 100);
      // NOTE: the offset moves under the checkpoint lock together with the emits it counts.
      synchronized (context.getCheckpointLock()) {
        for (Envelope envelope : batch) {
          context.collect(envelope);
          offset++;
        }
      }
    }
  }

  @Override
  public void cancel() {
    running = false;
  }
}
