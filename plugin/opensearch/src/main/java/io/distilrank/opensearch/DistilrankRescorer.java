package io.distilrank.opensearch;

import org.apache.lucene.index.IndexReader;
import org.apache.lucene.search.Explanation;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.ScoreDoc;
import org.apache.lucene.search.TopDocs;
import org.opensearch.OpenSearchStatusException;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.index.fielddata.IndexFieldData;
import org.opensearch.search.rescore.RescoreContext;
import org.opensearch.search.rescore.Rescorer;

import java.io.IOException;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Scores the first {@code window_size} hits of a shard with the student in one batched ONNX Runtime call and
 * re-sorts them ({@link Blend}: what {@code plugin/blend.py} computes offline). Scores: {@code replace} = the
 * student's logit; {@code blend} = {@code query_weight * norm(first_pass) + model_weight * norm(logit)}, {@code norm}
 * the request's {@code normalization} over this shard's window. Ties in the window keep first-pass order; hits
 * beyond the window keep their first-pass order strictly below the window's lowest score ({@link Blend#belowWindow}).
 * The window is kept (in the context and, for the fetch phase of a several-shard search, in {@link ModelCache}) so
 * that {@code explain} states the normalised values this search used.
 */
final class DistilrankRescorer implements Rescorer {
    static final DistilrankRescorer INSTANCE = new DistilrankRescorer();

    /** The per-shard parameters of one rescore. */
    static final class Context extends RescoreContext {
        final ModelCache cache;
        /** The body's {@code model}: an alias, or the model id itself. */
        final String requested;
        final String modelId;
        final String sha256;
        final String queryText;
        final List<String> fields;
        final DocumentTexts.Source source;
        /** The {@code binary} doc-values field holding index-time token ids ({@link TokenIds}), or {@code null}. */
        final String tokenIdsField;
        final IndexFieldData<?> tokenIds;
        final BlendParams blend;
        final String shard;
        /** The window this context rescored (the fetch phase of a one-shard search explains with the same context). */
        Blend.Window window;
        /** The stage times of the model that scored this context's window. */
        StageTimes times;

        Context(int windowSize, ModelCache cache, String requested, String modelId, String sha256, String queryText, List<String> fields,
                DocumentTexts.Source source, String tokenIdsField, IndexFieldData<?> tokenIds, BlendParams blend, String shard) {
            super(windowSize, INSTANCE);
            this.cache = cache;
            this.requested = requested;
            this.modelId = modelId;
            this.sha256 = sha256;
            this.queryText = queryText;
            this.fields = fields;
            this.source = source;
            this.tokenIdsField = tokenIdsField;
            this.tokenIds = tokenIds;
            this.blend = blend;
            this.shard = shard;
        }

        /** {@code model [id]}, and the alias it was resolved from when the body named one. */
        String modelLabel() {
            return requested == null || requested.equals(modelId) ? "model [" + modelId + "]"
                : "model [" + modelId + "] (alias [" + requested + "])";
        }

        float[] logits(IndexSearcher searcher, int[] docs) throws IOException {
            StudentModel model = cache.acquire(modelId, sha256);
            if (model == null) {
                throw new OpenSearchStatusException("distilrank model [" + modelId + "] is not loaded on this node (it was evicted or "
                    + "deleted while the search ran); retry the search", RestStatus.SERVICE_UNAVAILABLE);
            }
            try {
                int[][] ids = new int[docs.length][];
                if (tokenIds != null) {
                    readTokenIds(searcher, docs, model, ids);
                }
                String[] texts = readMissingTexts(searcher, docs, ids, model.times());
                times = model.times();
                return model.score(queryText, ids, texts);
            } catch (ai.onnxruntime.OrtException e) {
                throw new OpenSearchStatusException("distilrank model [" + modelId + "] failed: " + e.getMessage(),
                    RestStatus.INTERNAL_SERVER_ERROR, e);
            } finally {
                model.release();
            }
        }

        private void readTokenIds(IndexSearcher searcher, int[] docs, StudentModel model, int[][] ids) throws IOException {
            long t0 = System.nanoTime();
            int[] misses = DocumentTokenIds.read(searcher, docs, tokenIds, model.tokenizerFingerprint(), ids);
            model.times().add(StageTimes.READ_TOKEN_IDS, System.nanoTime() - t0);
            model.times().tokenIds(docs.length - Arrays.stream(misses).sum(), misses);
            if (misses[TokenIds.Miss.TOKENIZER_MISMATCH.ordinal()] > 0 || misses[TokenIds.Miss.MALFORMED.ordinal()] > 0) {
                model.warnTokenIds(shard, tokenIdsField, misses);
            }
        }

        /** The texts of the documents without token ids ({@code null} elsewhere): all of them when none were read. */
        private String[] readMissingTexts(IndexSearcher searcher, int[] docs, int[][] ids, StageTimes stageTimes) throws IOException {
            String[] texts = new String[docs.length];
            int[] missing = java.util.stream.IntStream.range(0, docs.length).filter(i -> ids[i] == null).toArray();
            if (missing.length == 0) {
                return texts;
            }
            long t0 = System.nanoTime();
            int[] sub = Arrays.stream(missing).map(i -> docs[i]).toArray();
            String[] read = DocumentTexts.read(searcher, sub, fields, source);
            for (int k = 0; k < missing.length; k++) {
                texts[missing[k]] = read[k];
            }
            stageTimes.add(StageTimes.READ_TEXTS, System.nanoTime() - t0);
            return texts;
        }

        /** Where {@link ModelCache} keeps this shard's window: shard, reader, model, query, blend and the window's documents. */
        String windowKey(IndexSearcher searcher, int[] docs) {
            int[] sorted = docs.clone();
            Arrays.sort(sorted);
            IndexReader.CacheHelper helper = searcher.getIndexReader().getReaderCacheHelper();
            String reader = helper == null ? "-" : Integer.toHexString(System.identityHashCode(helper.getKey()));
            return String.join("|", shard, reader, modelId, sha256, queryText, fields.toString(), blend.toString(),
                Integer.toString(getWindowSize()), Integer.toString(sorted.length), Integer.toHexString(Arrays.hashCode(sorted)));
        }

        /** The window that holds {@code doc}: this context's, else the one the node kept for this search; or {@code null}. */
        Blend.Window windowOf(int doc, IndexSearcher searcher) {
            if (window != null && window.indexOf(doc) >= 0) {
                return window;
            }
            Set<Integer> rescored = getRescoredDocs();
            if (rescored == null) {
                return null;
            }
            int[] docs = rescored.stream().mapToInt(Integer::intValue).toArray();
            Blend.Window kept = cache.window(windowKey(searcher, docs));
            if (kept == null || kept.indexOf(doc) < 0) {
                return null;
            }
            int[] a = kept.docs().clone();
            Arrays.sort(a);
            Arrays.sort(docs);
            return Arrays.equals(a, docs) ? kept : null;
        }
    }

    /** The window's blend under {@code p}: {@code replace} is weights 0 and 1 without normalisation (the logit). */
    static Blend.Window blend(int[] docs, float[] firstPass, float[] logits, BlendParams p) {
        return p.replace() ? Blend.window(docs, firstPass, logits, 0.0, 1.0, "none")
            : Blend.window(docs, firstPass, logits, p.queryWeight(), p.modelWeight(), p.normalization());
    }

    /**
     * {@code in} (first-pass order) rescored: its first {@code w.docs().length} hits sorted by the window's combined
     * score (ties in first-pass order), then the rest in first-pass order with scores strictly below the window's.
     */
    static ScoreDoc[] rescored(ScoreDoc[] in, Blend.Window w) {
        float[] combined = w.combined();
        int n = combined.length;
        int[] order = Blend.order(combined);
        ScoreDoc[] out = new ScoreDoc[in.length];
        float lowest = Float.POSITIVE_INFINITY;
        for (int k = 0; k < n; k++) {
            int i = order[k];
            out[k] = new ScoreDoc(in[i].doc, combined[i], in[i].shardIndex);
            lowest = Math.min(lowest, combined[i]);
        }
        float[] below = Blend.belowWindow(lowest, in.length - n);
        for (int j = 0; j < below.length; j++) {
            out[n + j] = new ScoreDoc(in[n + j].doc, below[j], in[n + j].shardIndex);
        }
        return out;
    }

    @Override
    public TopDocs rescore(TopDocs topDocs, IndexSearcher searcher, RescoreContext rescoreContext) throws IOException {
        if (topDocs == null || topDocs.scoreDocs.length == 0) {
            return topDocs;
        }
        Context ctx = (Context) rescoreContext;
        ScoreDoc[] in = topDocs.scoreDocs;
        int n = Math.min(ctx.getWindowSize(), in.length);
        int[] docs = new int[n];
        float[] firstPass = new float[n];
        Set<Integer> rescored = new HashSet<>();
        for (int i = 0; i < n; i++) {
            docs[i] = in[i].doc;
            firstPass[i] = in[i].score;
            rescored.add(in[i].doc);
        }
        ctx.setRescoredDocs(rescored);
        float[] logits = ctx.logits(searcher, docs);
        long t0 = System.nanoTime();
        Blend.Window w = blend(docs, firstPass, logits, ctx.blend);
        ctx.window = w;
        ctx.cache.rememberWindow(ctx.windowKey(searcher, docs), w);
        TopDocs out = new TopDocs(topDocs.totalHits, rescored(in, w));
        if (ctx.times != null) {
            ctx.times.add(StageTimes.BLEND_SORT, System.nanoTime() - t0);
        }
        return out;
    }

    @Override
    public Explanation explain(int topLevelDocId, IndexSearcher searcher, RescoreContext rescoreContext, Explanation sourceExplanation)
        throws IOException {
        Context ctx = (Context) rescoreContext;
        if (!ctx.isRescored(topLevelDocId)) {
            return sourceExplanation;
        }
        Blend.Window w = ctx.windowOf(topLevelDocId, searcher);
        int i = w == null ? -1 : w.indexOf(topLevelDocId);
        if (i >= 0 && sourceExplanation != null && !near(sourceExplanation.getValue().floatValue(), w.firstPass()[i])) {
            i = -1; // a window of another first-pass query with the same documents: not this search's
        }
        if (i < 0) {
            return withoutWindow(topLevelDocId, searcher, ctx, sourceExplanation);
        }
        Explanation model = Explanation.match(w.logits()[i], "distilrank logit of " + ctx.modelLabel() + " on " + ctx.fields);
        if (ctx.blend.replace()) {
            return Explanation.match(w.combined()[i], "distilrank replace: the model's logit (query_weight, model_weight and "
                + "normalization apply to score_mode blend only)", model);
        }
        Explanation first = sourceExplanation == null ? Explanation.noMatch("no first pass") : sourceExplanation;
        String norm = w.normalization();
        return Explanation.match(w.combined()[i], "distilrank blend: " + w.queryWeight() + " * " + norm + "(first pass) + " + w.modelWeight()
                + " * " + norm + "(logit), normalization [" + norm + "] over this shard's window of " + w.docs().length + " hits",
            Explanation.match(w.firstNorm()[i], describe("first pass", norm, w.firstPass()[i], w.firstStats()), first),
            Explanation.match(w.logitNorm()[i], describe("logit", norm, w.logits()[i], w.logitStats()), model));
    }

    private static boolean near(float a, float b) {
        return Math.abs(a - b) <= 1e-5f * Math.max(1f, Math.abs(b));
    }

    /** {@code norm(signal)} with the window statistics it used. */
    static String describe(String signal, String normalization, float x, Blend.Stats st) {
        return switch (normalization) {
            case "min_max" -> st.max() > st.min()
                ? "min_max(" + signal + ") = (x - min) / (max - min), x = " + x + ", min = " + st.min() + ", max = " + st.max()
                : "min_max(" + signal + ") = 0: the window's range is 0 (x = " + x + ")";
            case "z_score" -> st.std() > 0
                ? "z_score(" + signal + ") = (x - mean) / std, x = " + x + ", mean = " + st.mean() + ", std = " + st.std()
                : "z_score(" + signal + ") = 0: the window's standard deviation is 0 (x = " + x + ")";
            default -> signal + " (normalization none)";
        };
    }

    /** The explanation when this search's window is no longer kept on the node (evicted): the logit scored alone. */
    private static Explanation withoutWindow(int doc, IndexSearcher searcher, Context ctx, Explanation source) throws IOException {
        float logit = ctx.logits(searcher, new int[] {doc})[0];
        Explanation model = Explanation.match(logit, "distilrank logit of " + ctx.modelLabel() + " on " + ctx.fields + ", scored alone");
        if (ctx.blend.replace()) {
            return Explanation.match(logit, "distilrank replace: the model's logit", model);
        }
        if (!ctx.blend.normalization().equals("none") || source == null) {
            return Explanation.match(logit, "distilrank blend with normalization [" + ctx.blend.normalization() + "]: the window of this "
                + "search is no longer kept on this node, so the normalised values cannot be given; the logit alone", model);
        }
        float first = source.getValue().floatValue();
        return Explanation.match((float) (ctx.blend.queryWeight() * first + ctx.blend.modelWeight() * logit), "distilrank blend: "
            + ctx.blend.queryWeight() + " * first pass + " + ctx.blend.modelWeight() + " * logit (normalization none)", source, model);
    }
}
