package io.distilrank.opensearch;

import ai.onnxruntime.OrtException;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
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
    private final byte[] tokenizerFingerprint;
    private final OrtScorer scorer;
    private final long zipBytes;
    private final long onnxBytes;
    private final long loadMillis;
    /** Milliseconds of each load step, in order (see {@link #load}); the cache adds {@code read_zip}. */
    private final Map<String, Double> loadSteps = new java.util.concurrent.ConcurrentSkipListMap<>();
    private final long loadedAtMillis;
    private final AtomicInteger refs = new AtomicInteger(1);
    private final AtomicLong uses = new AtomicLong();
    private final java.util.concurrent.atomic.AtomicBoolean warnedTokenIds = new java.util.concurrent.atomic.AtomicBoolean();
    private final StageTimes times = new StageTimes();

    private StudentModel(String modelId, String sha256, StudentTokenizer tokenizer, byte[] tokenizerFingerprint, OrtScorer scorer,
                         long zipBytes, long onnxBytes, long loadMillis) {
        this.modelId = modelId;
        this.sha256 = sha256;
        this.tokenizer = tokenizer;
        this.tokenizerFingerprint = tokenizerFingerprint;
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
        Map<String, Double> steps = new LinkedHashMap<>();
        long t = System.nanoTime();
        String actual = sha256(zip);
        t = step(steps, "verify_sha256", t);
        if (expectedSha256 != null && !actual.equals(expectedSha256)) {
            throw new IllegalArgumentException("model [" + modelId + "]: the stored zip has sha256 " + actual + ", expected " + expectedSha256);
        }
        byte[] onnx = null;
        byte[] tokenizerJson = null;
        try (ZipInputStream in = new ZipInputStream(new ByteArrayInputStream(zip))) {
            ZipEntry e;
            while ((e = in.getNextEntry()) != null) {
                if (e.getName().endsWith(".onnx")) {
                    if (onnx != null) {
                        throw new IllegalArgumentException("model [" + modelId + "]: the zip holds more than one .onnx file");
                    }
                    onnx = in.readAllBytes();
                } else if (e.getName().equals("tokenizer.json")) {
                    tokenizerJson = in.readAllBytes();
                }
            }
        }
        t = step(steps, "unzip", t);
        if (onnx == null || tokenizerJson == null) {
            throw new IllegalArgumentException("model [" + modelId + "]: the zip needs one .onnx file and tokenizer.json at its root");
        }
        StudentTokenizer tok = StudentTokenizer.fromJson(new String(tokenizerJson, StandardCharsets.UTF_8));
        t = step(steps, "tokenizer", t);
        OrtScorer scorer = new OrtScorer(onnx, threads);
        t = step(steps, "onnx_session", t);
        StudentModel model = new StudentModel(modelId, actual, tok, TokenIds.fingerprint(tokenizerJson), scorer, zip.length, onnx.length,
            (System.nanoTime() - t0) / 1_000_000);
        model.warmWindow(8);  // so the first search does not pay ONNX Runtime's first-run setup
        step(steps, "warm_up_run", t);
        model.loadSteps.putAll(steps);
        return model;
    }

    private static long step(Map<String, Double> steps, String name, long since) {
        long now = System.nanoTime();
        steps.put(name, (now - since) / 1e6);
        return now;
    }

    /** Logits of {@code query} against each document, in order (one ONNX Runtime run); its stage times go to {@link #times()}. */
    public float[] score(String query, List<String> documents) throws OrtException {
        return score(query, new int[documents.size()][], documents.toArray(new String[0]));
    }

    /**
     * Logits of {@code query} against each document, in order, in one ONNX Runtime run: document {@code i} is
     * {@code ids[i]} (its ids from index time, {@link TokenIds}) when not {@code null}, else {@code texts[i]} tokenized now.
     */
    public float[] score(String query, int[][] ids, String[] texts) throws OrtException {
        long t0 = System.nanoTime();
        int[] q = tokenizer.tokenize(query);
        List<StudentTokenizer.Encoding> batch = new ArrayList<>(ids.length);
        for (int i = 0; i < ids.length; i++) {
            batch.add(tokenizer.encodePair(q, ids[i] != null ? ids[i] : tokenizer.tokenize(texts[i])));
        }
        times.add(StageTimes.TOKENIZE, System.nanoTime() - t0);
        times.window(ids.length);
        uses.incrementAndGet();
        return scorer.score(batch, times);
    }

    /**
     * Logs once per loaded model that a shard's index-time token ids could not be used (another tokenizer wrote them, or
     * they are malformed): those documents are scored from their text, correct but slower. {@code _stats} counts each.
     */
    void warnTokenIds(String shard, String field, int[] misses) {
        if (warnedTokenIds.compareAndSet(false, true)) {
            org.apache.logging.log4j.LogManager.getLogger(StudentModel.class).warn("distilrank model [{}]: shard [{}] field [{}] holds token "
                + "ids it cannot use ({} from another tokenizer, {} malformed); their texts are read and tokenized instead. Write the "
                + "ids again with this model's tokenizer.json (distilrank plugin tokenize-index).", modelId, shard, field,
                misses[TokenIds.Miss.TOKENIZER_MISMATCH.ordinal()], misses[TokenIds.Miss.MALFORMED.ordinal()]);
        }
    }

    /** The first 8 bytes of the SHA-256 of this model's {@code tokenizer.json}: what index-time token ids must carry. */
    byte[] tokenizerFingerprint() {
        return tokenizerFingerprint.clone();
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

    /** Scores one dummy window of {@code size} short documents (not counted in the stage timers); returns its milliseconds. */
    double warmWindow(int size) throws OrtException {
        long t0 = System.nanoTime();
        int[] q = tokenizer.tokenize("warm up query");
        List<StudentTokenizer.Encoding> batch = new ArrayList<>(size);
        for (int i = 0; i < size; i++) {
            batch.add(tokenizer.encodePair(q, tokenizer.tokenize("warm up document number " + i + " with a few words")));
        }
        scorer.score(batch, new StageTimes());
        return (System.nanoTime() - t0) / 1e6;
    }

    /** Records how long reading the zip from the models index took before {@link #load} (by {@link ModelCache}). */
    void readZipMillis(double ms) {
        loadSteps.put("read_zip", ms);
    }

    /** Milliseconds per load step: {@code read_zip}, {@code verify_sha256}, {@code unzip}, {@code tokenizer},
     *  {@code onnx_session}, {@code warm_up_run}. */
    Map<String, Double> loadSteps() {
        return Map.copyOf(loadSteps);
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
