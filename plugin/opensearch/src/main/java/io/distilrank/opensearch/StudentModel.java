package io.distilrank.opensearch;

import ai.onnxruntime.OrtException;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;

/**
 * A loaded model zip (the one registered with ML Commons): its SHA-256, the ported tokenizer and an ONNX Runtime
 * session. {@link #score} tokenizes the query once and scores every document in one batched run.
 * Reference counted: the node cache holds one reference; a rescore {@link #acquire()}s one for its duration, and
 * the native session is closed when the last reference is released.
 */
public final class StudentModel {
    private final String modelId;
    private final String sha256;
    private final StudentTokenizer tokenizer;
    private final OrtScorer scorer;
    private final long zipBytes;
    private final long onnxBytes;
    private final long loadMillis;
    private final long loadedAtMillis;
    private final AtomicInteger refs = new AtomicInteger(1);
    private final AtomicLong uses = new AtomicLong();
    private final StageTimes times = new StageTimes();

    private StudentModel(String modelId, String sha256, StudentTokenizer tokenizer, OrtScorer scorer, long zipBytes, long onnxBytes,
                         long loadMillis) {
        this.modelId = modelId;
        this.sha256 = sha256;
        this.tokenizer = tokenizer;
        this.scorer = scorer;
        this.zipBytes = zipBytes;
        this.onnxBytes = onnxBytes;
        this.loadMillis = loadMillis;
        this.loadedAtMillis = System.currentTimeMillis();
    }

    /** Lowercase hex SHA-256 of {@code bytes}. */
    public static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * Loads a model zip (flat: one {@code *.onnx} and {@code tokenizer.json}) after checking its SHA-256 equals
     * {@code expectedSha256}; throws {@link IllegalArgumentException} naming the problem.
     */
    public static StudentModel load(String modelId, byte[] zip, String expectedSha256, int threads) throws IOException, OrtException {
        long t0 = System.nanoTime();
        String actual = sha256(zip);
        if (expectedSha256 != null && !actual.equals(expectedSha256)) {
            throw new IllegalArgumentException("model [" + modelId + "]: the stored zip has sha256 " + actual + ", expected " + expectedSha256);
        }
        byte[] onnx = null;
        String tokenizerJson = null;
        try (ZipInputStream in = new ZipInputStream(new ByteArrayInputStream(zip))) {
            ZipEntry e;
            while ((e = in.getNextEntry()) != null) {
                if (e.getName().endsWith(".onnx")) {
                    if (onnx != null) {
                        throw new IllegalArgumentException("model [" + modelId + "]: the zip holds more than one .onnx file");
                    }
                    onnx = in.readAllBytes();
                } else if (e.getName().equals("tokenizer.json")) {
                    tokenizerJson = new String(in.readAllBytes(), StandardCharsets.UTF_8);
                }
            }
        }
        if (onnx == null || tokenizerJson == null) {
            throw new IllegalArgumentException("model [" + modelId + "]: the zip needs one .onnx file and tokenizer.json at its root");
        }
        StudentTokenizer tok = StudentTokenizer.fromJson(tokenizerJson);
        OrtScorer scorer = new OrtScorer(onnx, threads);
        return new StudentModel(modelId, actual, tok, scorer, zip.length, onnx.length, (System.nanoTime() - t0) / 1_000_000);
    }

    /** Logits of {@code query} against each document, in order (one ONNX Runtime run); its stage times go to {@link #times()}. */
    public float[] score(String query, List<String> documents) throws OrtException {
        long t0 = System.nanoTime();
        int[] q = tokenizer.tokenize(query);
        List<StudentTokenizer.Encoding> batch = new ArrayList<>(documents.size());
        for (String d : documents) {
            batch.add(tokenizer.encodePair(q, tokenizer.tokenize(d)));
        }
        times.add(StageTimes.TOKENIZE, System.nanoTime() - t0);
        times.window(documents.size());
        uses.incrementAndGet();
        return scorer.score(batch, times);
    }

    /** Where this model's rescore time went on this node. */
    StageTimes times() {
        return times;
    }

    /** Takes a reference; false when the model was already closed (evicted and released). */
    public boolean acquire() {
        while (true) {
            int r = refs.get();
            if (r == 0) {
                return false;
            }
            if (refs.compareAndSet(r, r + 1)) {
                return true;
            }
        }
    }

    /** Drops a reference; the last one closes the ONNX Runtime session. */
    public void release() {
        if (refs.decrementAndGet() == 0) {
            try {
                scorer.close();
            } catch (OrtException ignored) {
                // closing a session only fails when it was already closed
            }
        }
    }

    public String modelId() {
        return modelId;
    }

    public String sha256() {
        return sha256;
    }

    public long zipBytes() {
        return zipBytes;
    }

    public long onnxBytes() {
        return onnxBytes;
    }

    public long loadMillis() {
        return loadMillis;
    }

    public long loadedAtMillis() {
        return loadedAtMillis;
    }

    public long uses() {
        return uses.get();
    }

    public int vocabSize() {
        return tokenizer.vocabSize();
    }

    StudentTokenizer tokenizer() {
        return tokenizer;
    }
}
