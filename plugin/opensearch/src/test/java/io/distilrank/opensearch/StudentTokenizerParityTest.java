package io.distilrank.opensearch;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The Java tokenizer port gives exactly the ids and type ids of the Python {@code tokenizers} library. */
class StudentTokenizerParityTest {
    @ParameterizedTest
    @ValueSource(strings = {"student", "student-trunc24", "minilm"})
    void idsEqualPythonTokenizers(String name) throws Exception {
        StudentTokenizer tok = StudentTokenizer.fromJson(Fixtures.text(name + ".tokenizer.json"));
        List<Map<String, Object>> cases = Fixtures.jsonl(name + ".cases.jsonl");
        assertTrue(cases.size() >= 11_000, "expected the parity sample + 10,000+ real titles + edge cases, got " + cases.size());
        List<String> mismatches = new ArrayList<>();
        int truncated = 0;
        for (Map<String, Object> c : cases) {
            StudentTokenizer.Encoding e = tok.encodePair((String) c.get("q"), (String) c.get("d"));
            int[] ids = Fixtures.ints(c.get("ids"));
            int[] types = Fixtures.ints(c.get("types"));
            if (!Arrays.equals(ids, e.ids()) || !Arrays.equals(types, e.typeIds())) {
                mismatches.add("q=" + c.get("q") + " d=" + c.get("d") + "\n  python " + Arrays.toString(ids) + " " + Arrays.toString(types)
                    + "\n  java   " + Arrays.toString(e.ids()) + " " + Arrays.toString(e.typeIds()));
            }
            if (name.equals("student-trunc24") && ids.length == 24) {
                truncated++;
            }
        }
        assertEquals(List.of(), mismatches.subList(0, Math.min(5, mismatches.size())),
            mismatches.size() + " of " + cases.size() + " pairs differ");
        if (name.equals("student-trunc24")) {
            assertTrue(truncated > 1000, "the truncation fixture should truncate many pairs, truncated " + truncated);
        }
    }

    @Test
    void refusesComponentsTheExporterDoesNotAllow() throws Exception {
        String json = Fixtures.text("student.tokenizer.json").replace("\"BertPreTokenizer\"", "\"Metaspace\"");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> StudentTokenizer.fromJson(json));
        assertTrue(e.getMessage().contains("Metaspace"), e.getMessage());
    }
}
