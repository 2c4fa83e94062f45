package statefunworkers.runner;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.function.Supplier;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ArrayNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * The runner's two HTTP ports, with the StateFun playground's conventions.
 *
 * <p>Ingress: {@code POST /{namespace}/{type}/{id}} (or PUT) with {@code Content-Type:
 * application/vnd.{typename}} (default {@code io.statefun.types/string}); answers 202 once the message is in
 * the {@link IngressLog}. {@code GET /status} tells the job's status and how often it started.
 *
 * <p>Egress: {@code GET /{topic}} answers the next record of the topic not read yet (200, its value) or 404,
 * as the playground does; {@code GET /{topic}?all} answers every record of the topic as JSON, read or not.
 */
final class WebServers {
  static final String CONTENT_TYPE_PREFIX = "application/vnd.";
  static final String DEFAULT_TYPENAME = "io.statefun.types/string";
  private static final ObjectMapper JSON = new ObjectMapper();

  private WebServers() {}

  static HttpServer ingress(String host, int port, int maxBodyBytes, Supplier<ObjectNode> status)
      throws IOException {
    HttpServer server = HttpServer.create(new InetSocketAddress(host, port), 64);
    server.createContext(
        "/",
        exchange -> {
          try (exchange) {
            String method = exchange.getRequestMethod();
            String path = exchange.getRequestURI().getRawPath();
            if (method.equals("GET") && path.equals("/status")) {
              answer(exchange, 200, "application/json", JSON.writeValueAsBytes(status.get()));
            } else if (method.equals("POST") || method.equals("PUT")) {
              accept(exchange, path, maxBodyBytes);
            } else {
              answer(exchange, 405, "text/plain", text("use POST /{namespace}/{type}/{id}\n"));
            }
          }
        });
    server.setExecutor(Executors.newFixedThreadPool(4, daemon("ingress-http")));
    server.start();
    return server;
  }

  static HttpServer egress(String host, int port) throws IOException {
    HttpServer server = HttpServer.create(new InetSocketAddress(host, port), 64);
    server.createContext(
        "/",
        exchange -> {
          try (exchange) {
            String topic = exchange.getRequestURI().getPath().substring(1);
            String query = exchange.getRequestURI().getRawQuery();
            if (!exchange.getRequestMethod().equals("GET")) {
              answer(exchange, 405, "text/plain", text("use GET /{topic}\n"));
            } else if (topic.isEmpty()) {
              answer(exchange, 200, "application/json",
                  JSON.writeValueAsBytes(EgressRecords.INSTANCE.topics()));
            } else if ("all".equals(query)) {
              answer(exchange, 200, "application/json",
                  JSON.writeValueAsBytes(asJson(EgressRecords.INSTANCE.all(topic))));
            } else {
              EgressRecords.Record next = EgressRecords.INSTANCE.pop(topic);
              if (next == null) {
                answer(exchange, 404, "text/plain", new byte[0]);
              } else {
                answer(exchange, 200, "application/octet-stream", next.value);
              }
            }
          }
        });
    server.setExecutor(Executors.newFixedThreadPool(2, daemon("egress-http")));
    server.start();
    return server;
  }

  private static void accept(HttpExchange exchange, String path, int maxBodyBytes)
      throws IOException {
    String[] parts = path.split("/", -1);
    if (parts.length != 4 || parts[1].isEmpty() || parts[2].isEmpty() || parts[3].isEmpty()) {
      answer(exchange, 404, "text/plain", text("use POST /{namespace}/{type}/{id}\n"));
      return;
    }
    String contentType = exchange.getRequestHeaders().getFirst("Content-Type");
    String typename =
        contentType != null && contentType.startsWith(CONTENT_TYPE_PREFIX)
            ? contentType.substring(CONTENT_TYPE_PREFIX.length()).trim()
            : DEFAULT_TYPENAME;
    byte[] body = readBounded(exchange.getRequestBody(), maxBodyBytes);
    if (body == null) {
      answer(exchange, 413, "text/plain", text("body over " + maxBodyBytes + " bytes\n"));
      return;
    }
    byte[] value;
    try {
      value = BuiltInTypes.fromText(typename, body);
    } catch (IllegalArgumentException e) {
      answer(exchange, 400, "text/plain", text(e.getMessage() + "\n"));
      return;
    }
    Envelope envelope =
        new Envelope(decode(parts[1]), decode(parts[2]), decode(parts[3]), typename, value);
    if (!IngressLog.INSTANCE.append(envelope)) {
      answer(exchange, 503, "text/plain", text("ingress log full\n"));
      return;
    }
    answer(exchange, 202, "text/plain", new byte[0]);
  }

  /** The body, or null when it is longer than {@code max} bytes (read no further than that). */
  private static byte[] readBounded(InputStream in, int max) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    byte[] buffer = new byte[65536];
    for (int n = in.read(buffer); n >= 0; n = in.read(buffer)) {
      if (out.size() + n > max) {
        return null;
      }
      out.write(buffer, 0, n);
    }
    return out.toByteArray();
  }

  private static ArrayNode asJson(List<EgressRecords.Record> records) {
    ArrayNode array = JSON.createArrayNode();
    for (EgressRecords.Record record : records) {
      ObjectNode node = array.addObject();
      node.put("egress", record.egress);
      node.put("topic", record.topic);
      node.put("key", record.key);
      node.put("typename", record.typename);
      node.put("value", new String(record.value, StandardCharsets.UTF_8));
      node.put("value_base64", Base64.getEncoder().encodeToString(record.value));
    }
    return array;
  }

  private static String decode(String segment) {
    return java.net.URLDecoder.decode(segment.replace("+", "%2B"), StandardCharsets.UTF_8);
  }

  private static byte[] text(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  private static void answer(HttpExchange exchange, int status, String contentType, byte[] body)
      throws IOException {
    exchange.getResponseHeaders().set("Content-Type", contentType);
    exchange.sendResponseHeaders(status, body.length == 0 ? -1 : body.length);
    if (body.length > 0) {
      try (OutputStream out = exchange.getResponseBody()) {
        out.write(body);
      }
    }
  }

  private static java.util.concurrent.ThreadFactory daemon(String name) {
    return runnable -> {
      Thread thread = new Thread(runnable, name);
      thread.setDaemon(true);
      return thread;
    };
  }
}
