package io.distilrank.opensearch;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;

/**
 * Where a model's rescore time goes, summed over every window it scored on this node: reading index-time token ids,
 * reading the documents' texts (all of them, or those without usable token ids), tokenizing, building the input tensors, the ONNX Runtime run, and blending + sorting the window. Reported per
 * model by {@code GET _plugins/distilrank/_stats} ({@code stages}), in milliseconds, totals and means per window.
 */
final class StageTimes {
    /** The stages, in the order a rescore runs them. */
    static final String[] STAGES = {"read_token_ids", "read_texts", "tokenize", "tensors", "onnx_run", "blend_sort"};

    private final LongAdder[] nanos = new LongAdder[STAGES.length];
    private final LongAdder windows = new LongAdder();
    private final LongAdder documents = new LongAdder();

    StageTimes() {
        for (int i = 0; i < STAGES.length; i++) {
            nanos[i] = new LongAdder();
        }
    }

    /** Adds {@code elapsedNanos} to stage {@code index} (one of {@link #STAGES}). */
    void add(int index, long elapsedNanos) {
        nanos[index].add(elapsedNanos);
    }

    /** Counts one scored window of {@code docs} documents. */
    void window(int docs) {
        windows.increment();
        documents.add(docs);
    }

    static final int READ_TOKEN_IDS = 0;
    static final int READ_TEXTS = 1;
    static final int TOKENIZE = 2;
    static final int TENSORS = 3;
    static final int ONNX_RUN = 4;
    static final int BLEND_SORT = 5;

    /** Documents scored from index-time token ids, and those that fell back to text, per {@link TokenIds.Miss}. */
    private final LongAdder tokenIdsUsed = new LongAdder();
    private final LongAdder[] tokenIdsMissed = {new LongAdder(), new LongAdder(), new LongAdder()};

    /** Counts {@code used} documents scored from their token ids and {@code misses[m]} that fell back for reason {@code m}. */
    void tokenIds(int used, int[] misses) {
        tokenIdsUsed.add(used);
        for (int m = 0; m < misses.length; m++) {
            tokenIdsMissed[m].add(misses[m]);
        }
    }

    /** {@code windows}, {@code documents}, then {@code <stage>_ms} (total) and {@code <stage>_ms_per_window} (mean). */
    Map<String, Object> toMap() {
        Map<String, Object> out = new LinkedHashMap<>();
        long w = windows.sum();
        out.put("windows", w);
        out.put("documents", documents.sum());
        out.put("token_ids_used", tokenIdsUsed.sum());
        for (TokenIds.Miss m : TokenIds.Miss.values()) {
            out.put("token_ids_fallback_" + m.name().toLowerCase(java.util.Locale.ROOT), tokenIdsMissed[m.ordinal()].sum());
        }
        for (int i = 0; i < STAGES.length; i++) {
            double ms = nanos[i].sum() / 1e6;
            out.put(STAGES[i] + "_ms", ms);
            out.put(STAGES[i] + "_ms_per_window", w == 0 ? 0.0 : ms / w);
        }
        return out;
    }
}
