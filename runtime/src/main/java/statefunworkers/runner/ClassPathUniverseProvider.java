package statefunworkers.runner;

import org.apache.flink.statefun.flink.core.StatefulFunctionsConfig;
import org.apache.flink.statefun.flink.core.StatefulFunctionsUniverse;
import org.apache.flink.statefun.flink.core.StatefulFunctionsUniverseProvider;
import org.apache.flink.statefun.flink.core.spi.Modules;

/**
 * Builds the universe from the modules on the class path and the configured module.yaml; StateFun's own
 * provider that does this is package-private. Runs again on every task (re)start, which re-reads the yaml.
 */
final class ClassPathUniverseProvider implements StatefulFunctionsUniverseProvider {
  private static final long serialVersionUID = 1L;

  @Override
  public StatefulFunctionsUniverse get(ClassLoader classLoader, StatefulFunctionsConfig configuration) {
    return Modules.loadFromClassPath(configuration).createStatefulFunctionsUniverse();
  }
}
