package statefunworkers.runner;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.core.execution.JobListener;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.JsonNodeFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.flink.statefun.flink.core.StatefulFunctionsConfig;
import org.apache.flink.statefun.flink.core.StatefulFunctionsJob;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * Runs a StateFun job in this JVM (a Flink MiniCluster) with the runner's HTTP ingress and egress.
 *
 * <p>Arguments are {@code key=value} pairs: Flink and StateFun configuration (for example {@code
 * statefun.remote.module-name=file:///path/module.yaml}, {@code execution.checkpointing.interval=1s},
 * {@code restart-strategy.fixed-delay.attempts=3}) and the runner's own {@code runner.*} keys (ports, bind
 * address, bounds). Exits 1 when the job fails for good, printing why.
 */
public final class LocalRunner {
  private static final AtomicReference<JobClient> JOB = new AtomicReference<>();

  private LocalRunner() {}

  public static void main(String[] args) throws Exception {
    Configuration conf = defaults();
    for (String arg : args) {
      int eq = arg.indexOf('=');
      if (eq <= 0) {
        throw new IllegalArgumentException("arguments are key=value, not " + arg);
      }
      conf.setString(arg.substring(0, eq), arg.substring(eq + 1));
    }
    String host = conf.getString("runner.bind-address", "127.0.0.1");
    int ingressPort = conf.getInteger("runner.ingress.port", 8090);
    int egressPort = conf.getInteger("runner.egress.port", 8091);
    IngressLog.INSTANCE.setCapacity(conf.getLong("runner.ingress.max-messages", 1_000_000));
    EgressRecords.INSTANCE.setCapacity(conf.getLong("runner.egress.max-records", 1_000_000));
    int maxBody = conf.getInteger("runner.ingress.max-body-bytes", 4 << 20);

    WebServers.ingress(host, ingressPort, maxBody, LocalRunner::status);
    WebServers.egress(host, egressPort);

    StreamExecutionEnvironment env =
        StreamExecutionEnvironment.createLocalEnvironment(conf.getInteger("parallelism.default", 1), conf);
    env.registerJobListener(
        new JobListener() {
          @Override
          public void onJobSubmitted(JobClient client, Throwable failure) {
            JOB.set(client);
          }

          @Override
          public void onJobExecuted(
              org.apache.flink.api.common.JobExecutionResult result, Throwable failure) {}
        });
    StatefulFunctionsConfig statefun = StatefulFunctionsConfig.fromFlinkConfiguration(conf);
    statefun.setProvider(new ClassPathUniverseProvider());

    System.out.printf(
        "statefun runner: module %s; ingress http://%s:%d/{namespace}/{type}/{id}, egress http://%s:%d/{topic}%n",
        conf.getString("statefun.remote.module-name", "classpath:module.yaml"),
        host, ingressPort, host, egressPort);
    try {
      StatefulFunctionsJob.main(env, statefun);
    } catch (Exception e) {
      System.out.println("statefun runner: the job failed for good:");
      for (Throwable t = e; t != null; t = t.getCause()) {
        System.out.println("  caused by " + t);
      }
      System.out.flush();
      System.exit(1);
    }
  }

  /** Settings a one-JVM StateFun job needs; every one can be overridden by an argument. */
  private static Configuration defaults() {
    Configuration conf = new Configuration();
    conf.setString("parallelism.default", "1");
    conf.setString(
        "classloader.parent-first-patterns.additional",
        "org.apache.flink.statefun;org.apache.kafka;com.google.protobuf");
    conf.setString("execution.checkpointing.interval", "2s");
    conf.setString("execution.checkpointing.max-concurrent-checkpoints", "1");
    conf.setString("restart-strategy", "fixed-delay");
    conf.setString("restart-strategy.fixed-delay.attempts", "3");
    conf.setString("restart-strategy.fixed-delay.delay", "1s");
    conf.setString("rest.bind-address", "127.0.0.1");
    conf.setString("rest.address", "127.0.0.1");
    conf.setString("rest.bind-port", "0");
    conf.setString("jobmanager.rpc.address", "127.0.0.1");
    return conf;
  }

  private static ObjectNode status() {
    ObjectNode node = JsonNodeFactory.instance.objectNode();
    JobClient client = JOB.get();
    String job = "SUBMITTING";
    if (client != null) {
      try {
        job = client.getJobStatus().get(5, TimeUnit.SECONDS).toString();
      } catch (Exception e) {
        job = "UNKNOWN (" + e + ")";
      }
    }
    node.put("job", job);
    node.put("starts", HttpIngressSource.STARTS.get());
    node.put("ingested", IngressLog.INSTANCE.size());
    node.put("egressed", EgressRecords.INSTANCE.total());
    node.put("egress_dropped", EgressRecords.INSTANCE.dropped());
    return node;
  }
}
