package statefunworkers.runner;

import java.util.ArrayList;
import java.util.List;

/**
 * Every message the HTTP ingress accepted, in order, for the life of the JVM.
 *
 * <p>The source reads it by position and checkpoints that position, so a job restored from a checkpoint
 * re-reads exactly the messages after it: nothing replayed twice into state, nothing skipped. The log lives
 * outside Flink (one static instance; the MiniCluster runs in this JVM), so it survives job restarts.
 */
final class IngressLog {
  static final IngressLog INSTANCE = new IngressLog();

  private final List<Envelope> entries = new ArrayList<>();
  private long capacity = 1_000_000;

  synchronized void setCapacity(long capacity) {
    this.capacity = capacity;
  }

  /** Appends a message; false when the log is full (the caller answers 503). */
  synchronized boolean append(Envelope envelope) {
    if (entries.size() >= capacity) {
      return false;
    }
    entries.add(envelope);
    notifyAll();
    return true;
  }

  synchronized long size() {
    return entries.size();
  }

  /** The messages from {@code offset} on, waiting up to {@code waitMillis} when there are none yet. */
  synchronized List<Envelope> readFrom(long offset, long waitMillis) throws InterruptedException {
    if (entries.size() <= offset) {
      wait(waitMillis);
    }
    if (entries.size() <= offset) {
      return List.of();
    }
    return new ArrayList<>(entries.subList((int) offset, entries.size()));
  }
}
