package io.distilrank.opensearch;

import org.opensearch.common.xcontent.json.JsonXContent;
import org.opensearch.core.xcontent.DeprecationHandler;
import org.opensearch.core.xcontent.NamedXContentRegistry;
import org.opensearch.core.xcontent.XContentParser;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** The fixtures {@code fixtures.py} writes (directory from the {@code distilrank.fixtures} system property). */
final class Fixtures {
    private Fixtures() {}

    static Path dir() {
        String d = System.getProperty("distilrank.fixtures");
        if (d == null || !Files.isDirectory(Path.of(d))) {
            throw new IllegalStateException("no fixtures at " + d + ": run `.venv/bin/python plugin/opensearch/fixtures.py "
                + "plugin/opensearch/target/fixtures` (mvn test does it in generate-test-resources)");
        }
        return Path.of(d);
    }

    static String text(String name) throws IOException {
        return Files.readString(dir().resolve(name), StandardCharsets.UTF_8);
    }

    static List<Map<String, Object>> jsonl(String name) throws IOException {
        List<Map<String, Object>> rows = new ArrayList<>();
        for (String line : text(name).split("\n")) {
            if (line.isBlank()) {
                continue;
            }
            try (XContentParser p = JsonXContent.jsonXContent.createParser(NamedXContentRegistry.EMPTY,
                DeprecationHandler.THROW_UNSUPPORTED_OPERATION, line)) {
                rows.add(p.map());
            }
        }
        return rows;
    }

    static int[] ints(Object list) {
        List<?> l = (List<?>) list;
        int[] out = new int[l.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = ((Number) l.get(i)).intValue();
        }
        return out;
    }
}
