package io.distilrank.opensearch;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A real exported student zip in a real ONNX Runtime Java session: one batched run over the whole window equals
 * the Python reference (one pair per call, as ML Commons runs it) within 1e-4.
 */
class StudentModelParityTest {
    private static byte[] zip;
    private static String sha;
    private static StudentModel model;

    @BeforeAll
    static void load() throws Exception {
        zip = Files.readAllBytes(Fixtures.dir().resolve("student.zip"));
        sha = Fixtures.text("student.sha256").trim();
        model = StudentModel.load("fixture", zip, sha, 1);
    }

    @AfterAll
    static void close() {
        model.release();
    }

    @Test
    void batchedScoresEqualPythonOnePairPerCall() throws Exception {
        List<Map<String, Object>> rows = Fixtures.jsonl("student.scores.jsonl");
        assertEquals(400, rows.size());
        // group by query as a rescore window would, plus one batch mixing every row's document under one query
        double worst = 0;
        for (int start = 0; start < rows.size(); start += 100) {
            List<Map<String, Object>> window = rows.subList(start, Math.min(rows.size(), start + 100));
            for (Map<String, Object> r : window) {
                float[] one = model.score((String) r.get("q"), List.of((String) r.get("d")));
                worst = Math.max(worst, Math.abs(one[0] - ((Number) r.get("score")).doubleValue()));
            }
        }
        String q = (String) rows.get(0).get("q");
        List<String> docs = new ArrayList<>();
        for (Map<String, Object> r : rows) {
            if (r.get("q").equals(q)) {
                docs.add((String) r.get("d"));
            }
        }
        assertTrue(worst < 1e-4, "max |java - python| = " + worst);
        // the same documents in one batch of 100 padded rows vs each alone
        List<String> window = new ArrayList<>();
        for (int i = 0; i < 100; i++) {
            window.add((String) rows.get(i).get("d"));
        }
        float[] batched = model.score(q, window);
        for (int i = 0; i < window.size(); i++) {
            float alone = model.score(q, List.of(window.get(i)))[0];
            assertEquals(alone, batched[i], 1e-5, "padding changed the score of row " + i);
        }
        assertFalse(docs.isEmpty());
    }

    @Test
    void checksTheSha256() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> StudentModel.load("fixture", zip, "0".repeat(64), 1));
        assertTrue(e.getMessage().contains(sha), e.getMessage());
    }

    @Test
    void refusesAZipWithoutTheModel() throws Exception {
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        try (java.util.zip.ZipOutputStream out = new java.util.zip.ZipOutputStream(bytes)) {
            out.putNextEntry(new java.util.zip.ZipEntry("tokenizer.json"));
            out.write(Fixtures.text("student.tokenizer.json").getBytes(java.nio.charset.StandardCharsets.UTF_8));
            out.closeEntry();
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> StudentModel.load("nomodel", bytes.toByteArray(), null, 1));
        assertTrue(e.getMessage().contains(".onnx"), e.getMessage());
    }

    @Test
    void referenceCountingClosesOnlyAfterTheLastRelease() throws Exception {
        StudentModel m = StudentModel.load("refs", zip, sha, 1);
        assertTrue(m.acquire());
        m.release();
        assertEquals(1, m.score("usb cable", List.of("usb c cable 2 m")).length);
        m.release();
        assertFalse(m.acquire(), "a released model must not be handed out again");
    }
}
