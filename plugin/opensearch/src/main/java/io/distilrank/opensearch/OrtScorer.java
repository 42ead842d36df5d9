package io.distilrank.opensearch;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;

import java.nio.LongBuffer;
import java.util.List;
import java.util.Map;

/**
 * One ONNX Runtime session over the exported {@code model.onnx} (inputs {@code input_ids}, {@code attention_mask},
 * {@code token_type_ids} int64 {@code [batch, seq]}, output logits {@code [batch, 1]}), scoring a whole batch of
 * encoded pairs in one {@code run}: rows are right-padded with id 0 and attention mask 0, which the student graph
 * ignores. {@code run} is thread-safe; {@link #close()} frees the native session.
 */
public final class OrtScorer implements AutoCloseable {
    private static OrtEnvironment shared;
    private final OrtEnvironment env;
    private final OrtSession session;

    /**
     * The process-wide ONNX Runtime environment. In the node the {@code ai.onnxruntime} classes are ML Commons' (the
     * plugin extends {@code opensearch-ml}), and DJL creates that environment with its own thread options, which
     * ONNX Runtime refuses once any environment exists; so DJL's OnnxRuntime engine is initialised first (a no-op
     * when ML Commons already did), and the rescorer then shares its environment. Without DJL (unit tests) a plain
     * environment is created.
     */
    static synchronized OrtEnvironment environment() {
        if (shared == null) {
            ClassLoader loader = OrtEnvironment.class.getClassLoader();
            Thread thread = Thread.currentThread();
            ClassLoader previous = thread.getContextClassLoader();
            try {
                thread.setContextClassLoader(loader);
                Class<?> engine = Class.forName("ai.djl.engine.Engine", true, loader);
                engine.getMethod("getEngine", String.class).invoke(null, "OnnxRuntime");
            } catch (ClassNotFoundException e) {
                // no DJL next to ONNX Runtime: nobody else creates the environment
            } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
                // DJL could not start its engine; ML Commons would fail the same way, the rescorer still runs
            } finally {
                thread.setContextClassLoader(previous);
            }
            shared = OrtEnvironment.getEnvironment();
        }
        return shared;
    }

    public OrtScorer(byte[] onnx, int intraOpThreads) throws OrtException {
        env = environment();
        try (OrtSession.SessionOptions opts = new OrtSession.SessionOptions()) {
            opts.setIntraOpNumThreads(intraOpThreads);
            opts.setInterOpNumThreads(1);
            opts.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
            session = env.createSession(onnx, opts);
        }
        for (String name : List.of("input_ids", "attention_mask", "token_type_ids")) {
            if (!session.getInputNames().contains(name)) {
                session.close();
                throw new IllegalArgumentException("model.onnx has inputs " + session.getInputNames() + ", expected input_ids, "
                    + "attention_mask, token_type_ids");
            }
        }
    }

    /** Logits, one per encoding, from one batched run. */
    public float[] score(List<StudentTokenizer.Encoding> batch) throws OrtException {
        return score(batch, null);
    }

    /** {@link #score(List)}, adding the time spent building tensors and in the run to {@code times} (when not null). */
    float[] score(List<StudentTokenizer.Encoding> batch, StageTimes times) throws OrtException {
        long t0 = System.nanoTime();
        int n = batch.size();
        if (n == 0) {
            return new float[0];
        }
        int width = 1;
        for (StudentTokenizer.Encoding e : batch) {
            width = Math.max(width, e.ids().length);
        }
        long[] ids = new long[n * width];
        long[] mask = new long[n * width];
        long[] types = new long[n * width];
        for (int r = 0; r < n; r++) {
            StudentTokenizer.Encoding e = batch.get(r);
            int base = r * width;
            for (int c = 0; c < e.ids().length; c++) {
                ids[base + c] = e.ids()[c];
                mask[base + c] = 1;
                types[base + c] = e.typeIds()[c];
            }
        }
        long[] shape = {n, width};
        try (OnnxTensor tIds = OnnxTensor.createTensor(env, LongBuffer.wrap(ids), shape);
             OnnxTensor tMask = OnnxTensor.createTensor(env, LongBuffer.wrap(mask), shape);
             OnnxTensor tTypes = OnnxTensor.createTensor(env, LongBuffer.wrap(types), shape)) {
            long t1 = System.nanoTime();
            try (OrtSession.Result result = session.run(Map.of("input_ids", tIds, "attention_mask", tMask, "token_type_ids", tTypes))) {
                Object value = result.get(0).getValue();
                float[] out = new float[n];
                if (value instanceof float[][] rows) {
                    for (int r = 0; r < n; r++) {
                        out[r] = rows[r][0];
                    }
                } else if (value instanceof float[] flat) {
                    System.arraycopy(flat, 0, out, 0, n);
                } else {
                    throw new IllegalStateException("model.onnx returned " + value.getClass() + ", expected float32 [batch, 1]");
                }
                if (times != null) {
                    times.add(StageTimes.TENSORS, t1 - t0);
                    times.add(StageTimes.ONNX_RUN, System.nanoTime() - t1);
                }
                return out;
            }
        }
    }

    @Override
    public void close() throws OrtException {
        session.close();
    }
}
