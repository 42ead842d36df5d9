package io.distilrank.opensearch;

import org.apache.lucene.search.Explanation;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.ScoreDoc;
import org.apache.lucene.search.TopDocs;
import org.opensearch.OpenSearchStatusException;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.search.rescore.RescoreContext;
import org.opensearch.search.rescore.Rescorer;

import java.io.IOException;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Scores the first {@code window_size} hits of a shard with the student in one batched ONNX Runtime call and
 * re-sorts them. Scores: {@code replace} = the student's logit; {@code blend} =
 * {@code query_weight * first_pass + model_weight * logit}. Hits beyond the window keep their first-pass order
 * below the window (score = lowest window score - 1 in {@code replace}, {@code query_weight * first_pass} in
 * {@code blend}).
 */
final class DistilrankRescorer implements Rescorer {
    static final DistilrankRescorer INSTANCE = new DistilrankRescorer();

    private static final Comparator<ScoreDoc> BY_SCORE = (a, b) -> {
        int c = Float.compare(b.score, a.score);
        return c != 0 ? c : Integer.compare(a.doc, b.doc);
    };

    /** The per-shard parameters of one rescore. */
    static final class Context extends RescoreContext {
        final ModelCache cache;
        final String modelId;
        final String sha256;
        final String queryText;
        final List<String> fields;
        final boolean stored;
        final boolean replace;
        final float queryWeight;
        final float modelWeight;

        Context(int windowSize, ModelCache cache, String modelId, String sha256, String queryText, List<String> fields, boolean stored,
                boolean replace, float queryWeight, float modelWeight) {
            super(windowSize, INSTANCE);
            this.cache = cache;
            this.modelId = modelId;
            this.sha256 = sha256;
            this.queryText = queryText;
            this.fields = fields;
            this.stored = stored;
            this.replace = replace;
            this.queryWeight = queryWeight;
            this.modelWeight = modelWeight;
        }

        float[] logits(IndexSearcher searcher, int[] docs) throws IOException {
            StudentModel model = cache.acquire(modelId, sha256);
            if (model == null) {
                throw new OpenSearchStatusException("distilrank model [" + modelId + "] is not loaded on this node (it was evicted or "
                    + "deleted while the search ran); retry the search", RestStatus.SERVICE_UNAVAILABLE);
            }
            try {
                return model.score(queryText, Arrays.asList(DocumentTexts.read(searcher, docs, fields, stored)));
            } catch (ai.onnxruntime.OrtException e) {
                throw new OpenSearchStatusException("distilrank model [" + modelId + "] failed: " + e.getMessage(),
                    RestStatus.INTERNAL_SERVER_ERROR, e);
            } finally {
                model.release();
            }
        }

        float combine(float firstPass, float logit) {
            return replace ? logit : queryWeight * firstPass + modelWeight * logit;
        }
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
        Set<Integer> rescored = new HashSet<>();
        for (int i = 0; i < n; i++) {
            docs[i] = in[i].doc;
            rescored.add(in[i].doc);
        }
        ctx.setRescoredDocs(rescored);
        float[] logits = ctx.logits(searcher, docs);
        ScoreDoc[] window = new ScoreDoc[n];
        float lowest = Float.POSITIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            window[i] = new ScoreDoc(in[i].doc, ctx.combine(in[i].score, logits[i]), in[i].shardIndex);
            lowest = Math.min(lowest, window[i].score);
        }
        Arrays.sort(window, BY_SCORE);
        ScoreDoc[] out = Arrays.copyOf(window, in.length);
        for (int i = n; i < in.length; i++) {
            float score = ctx.replace ? lowest - 1f : ctx.queryWeight * in[i].score;
            out[i] = new ScoreDoc(in[i].doc, score, in[i].shardIndex);
        }
        if (!ctx.replace && in.length > n) {
            Arrays.sort(out, BY_SCORE);
        }
        return new TopDocs(topDocs.totalHits, out);
    }

    @Override
    public Explanation explain(int topLevelDocId, IndexSearcher searcher, RescoreContext rescoreContext, Explanation sourceExplanation)
        throws IOException {
        Context ctx = (Context) rescoreContext;
        if (!ctx.isRescored(topLevelDocId)) {
            return sourceExplanation;
        }
        float logit = ctx.logits(searcher, new int[] {topLevelDocId})[0];
        Explanation model = Explanation.match(logit, "distilrank logit of model [" + ctx.modelId + "] on " + ctx.fields);
        if (ctx.replace) {
            return Explanation.match(logit, "distilrank replace: the model's logit", model);
        }
        float first = sourceExplanation == null ? 0f : sourceExplanation.getValue().floatValue();
        return Explanation.match(ctx.combine(first, logit), "distilrank blend: " + ctx.queryWeight + " * first pass + " + ctx.modelWeight
            + " * logit", sourceExplanation == null ? Explanation.noMatch("no first pass") : sourceExplanation, model);
    }
}
