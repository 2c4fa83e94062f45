package statefunworkers.runner;

import com.google.protobuf.CodedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;

/**
 * Turns a curl-friendly text body into StateFun's built-in value encoding.
 *
 * <p>Built-in types ({@code io.statefun.types/string}, {@code int}, ...) travel as one-field protobuf
 * wrappers, which nobody types by hand; the playground passes the body as it is, so a plain name sent to a
 * function that reads a string fails to decode there. Here a body of such a type is read as text and
 * wrapped; every other typename passes through unchanged.
 */
final class BuiltInTypes {
  private static final String PREFIX = "io.statefun.types/";

  private BuiltInTypes() {}

  static byte[] fromText(String typename, byte[] body) {
    if (!typename.startsWith(PREFIX)) {
      return body;
    }
    String text = new String(body, StandardCharsets.UTF_8).trim();
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    CodedOutputStream out = CodedOutputStream.newInstance(bytes);
    try {
      // proto3: a default value (0, false, "") is not written at all.
      switch (typename.substring(PREFIX.length())) {
        case "string":
          String raw = new String(body, StandardCharsets.UTF_8);
          if (!raw.isEmpty()) {
            out.writeString(1, raw);
          }
          break;
        case "int":
          int i = Integer.parseInt(text);
          if (i != 0) {
            out.writeSFixed32(1, i);
          }
          break;
        case "long":
          long l = Long.parseLong(text);
          if (l != 0) {
            out.writeSFixed64(1, l);
          }
          break;
        case "bool":
          if (!text.equals("true") && !text.equals("false")) {
            throw new IllegalArgumentException("a bool is true or false, not " + text);
          }
          if (text.equals("true")) {
            out.writeBool(1, true);
          }
          break;
        case "float":
          float f = Float.parseFloat(text);
          if (f != 0) {
            out.writeFloat(1, f);
          }
          break;
        case "double":
          double d = Double.parseDouble(text);
          if (d != 0) {
            out.writeDouble(1, d);
          }
          break;
        default:
          return body;
      }
      out.flush();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return bytes.toByteArray();
  }
}
