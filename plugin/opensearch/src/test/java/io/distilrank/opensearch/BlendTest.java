package io.distilrank.opensearch;

import org.apache.lucene.search.ScoreDoc;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link Blend} and {@link DistilrankRescorer#rescored}: normalisation, the combined score, the rescored order. */
class BlendTest {
    private static double[] norm(String normalization, double... v) {
        return Blend.normalize(v, Blend.Stats.of(v), normalization);
    }

    private static int[] ids(ScoreDoc[] hits) {
        int[] out = new int[hits.length];
        for (int i = 0; i < hits.length; i++) {
            out[i] = hits[i].doc;
        }
        return out;
    }

    /** Hits in first-pass order with doc ids 100, 101, ... */
    private static ScoreDoc[] hits(float... scores) {
        ScoreDoc[] out = new ScoreDoc[scores.length];
        for (int i = 0; i < scores.length; i++) {
            out[i] = new ScoreDoc(100 + i, scores[i], 0);
        }
        return out;
    }

    private static int[] docs(ScoreDoc[] in, int n) {
        int[] d = new int[n];
        for (int i = 0; i < n; i++) {
            d[i] = in[i].doc;
        }
        return d;
    }

    private static float[] first(ScoreDoc[] in, int n) {
        float[] f = new float[n];
        for (int i = 0; i < n; i++) {
            f[i] = in[i].score;
        }
        return f;
    }

    @Test
    void normalisations() {
        assertArrayEquals(new double[] {3, 1, 2}, norm("none", 3, 1, 2));
        assertArrayEquals(new double[] {1, 0, 0.5}, norm("min_max", 3, 1, 2));
        double sd = Math.sqrt(2.0 / 3.0);
        assertArrayEquals(new double[] {1 / sd, -1 / sd, 0}, norm("z_score", 3, 1, 2), 1e-15);
        assertThrows(IllegalArgumentException.class, () -> norm("rank", 1, 2));
    }

    @Test
    void oneHitAndZeroVarianceNormaliseToZero() {
        for (String n : List.of("min_max", "z_score")) {
            assertArrayEquals(new double[] {0}, norm(n, 7.5), n);
            assertArrayEquals(new double[] {0, 0, 0}, norm(n, 2, 2, 2), n);
        }
        assertArrayEquals(new double[] {7.5}, norm("none", 7.5));
        Blend.Window w = Blend.window(new int[] {1, 2, 3}, new float[] {4, 4, 4}, new float[] {1, 3, 2}, 5.0, 1.0, "z_score");
        double sd = Math.sqrt(2.0 / 3.0);
        assertArrayEquals(new float[] {(float) (-1 / sd), (float) (1 / sd), 0f}, w.combined());
    }

    @Test
    void pairwiseSumIsNumpys() {
        double[] a = new double[300];
        for (int i = 0; i < a.length; i++) {
            a[i] = Math.sin(i) * 1e3 + 1.0 / (i + 1);
        }
        double naive = 0;
        for (double x : a) {
            naive += x;
        }
        assertEquals(naive, Blend.pairwiseSum(a, 0, a.length), 1e-9);
        // a split at 144 (n / 2 rounded down to a multiple of 8), each half summed with 8 accumulators
        assertEquals(Blend.pairwiseSum(a, 0, 144) + Blend.pairwiseSum(a, 144, 156), Blend.pairwiseSum(a, 0, 300));
    }

    /** Every case fixtures.py computed with plugin/blend.py: the same float32 scores, bit for bit, and the same order. */
    @Test
    void equalsPythonBitForBit() throws Exception {
        List<Map<String, Object>> cases = Fixtures.jsonl("blend.cases.jsonl");
        assertTrue(cases.size() > 100);
        for (Map<String, Object> c : cases) {
            float[] firstPass = floats(c.get("first"));
            float[] logits = floats(c.get("logits"));
            int n = logits.length;
            ScoreDoc[] in = hits(firstPass);
            BlendParams p = new BlendParams("blend", ((Number) c.get("query_weight")).doubleValue(),
                ((Number) c.get("model_weight")).doubleValue(), (String) c.get("normalization"));
            Blend.Window w = DistilrankRescorer.blend(docs(in, n), first(in, n), logits, p);
            float[] want = floats(c.get("combined"));
            for (int i = 0; i < n; i++) {
                assertEquals(Float.floatToIntBits(want[i]), Float.floatToIntBits(w.combined()[i]), c + " hit " + i);
            }
            int[] order = Fixtures.ints(c.get("order"));
            int[] got = ids(DistilrankRescorer.rescored(in, w));
            for (int i = 0; i < order.length; i++) {
                assertEquals(100 + order[i], got[i], "rank " + i + " of " + c.get("normalization") + " n=" + firstPass.length);
            }
        }
    }

    private static float[] floats(Object list) {
        List<?> l = (List<?>) list;
        float[] out = new float[l.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = ((Number) l.get(i)).floatValue();
        }
        return out;
    }

    @Test
    void hitsPastTheWindowStayBelowItInFirstPassOrder() {
        // BM25 scores far above the normalised window: query_weight * raw score would outrank the window
        ScoreDoc[] in = hits(30f, 20f, 10f, 9f, 8f, 8f, 7f);
        BlendParams p = new BlendParams("blend", 1.0, 1.0, "min_max");
        Blend.Window w = DistilrankRescorer.blend(docs(in, 3), first(in, 3), new float[] {0f, 2f, 1f}, p);
        ScoreDoc[] out = DistilrankRescorer.rescored(in, w);
        assertArrayEquals(new int[] {101, 100, 102, 103, 104, 105, 106}, ids(out));
        assertEquals(1.5f, out[0].score);  // 0.5 + 1
        assertEquals(1.0f, out[1].score);  // 1 + 0
        assertEquals(0.5f, out[2].score);  // 0 + 0.5
        assertEquals(-0.5f, out[3].score);
        for (int i = 4; i < out.length; i++) {
            assertEquals(Math.nextDown(out[i - 1].score), out[i].score);
        }
        ScoreDoc[] replace = DistilrankRescorer.rescored(in, DistilrankRescorer.blend(docs(in, 3), first(in, 3), new float[] {0f, 2f, 1f},
            new BlendParams("replace", null, null, null).resolve(BlendParams.NONE_GIVEN)));
        assertArrayEquals(new int[] {101, 102, 100, 103, 104, 105, 106}, ids(replace));
        assertEquals(-1f, replace[3].score);
        assertTrue(replace[6].score < replace[5].score && replace[5].score < replace[4].score);
    }

    @Test
    void belowAHugeLowestScoreStillStrictlyBelow() {
        float[] below = Blend.belowWindow(1e9f, 3);
        assertTrue(below[0] < 1e9f && below[1] < below[0] && below[2] < below[1]);
        assertArrayEquals(new float[] {-1f, Math.nextDown(-1f)}, Blend.belowWindow(0f, 2));
    }

    @Test
    void tiesKeepFirstPassOrderNotDocIdOrder() {
        ScoreDoc[] in = {new ScoreDoc(9, 5f, 0), new ScoreDoc(3, 4f, 0), new ScoreDoc(7, 3f, 0), new ScoreDoc(1, 2f, 0)};
        BlendParams replace = new BlendParams("replace", 1.0, 1.0, "none");
        Blend.Window w = DistilrankRescorer.blend(docs(in, 4), first(in, 4), new float[] {1f, 2f, 1f, 2f}, replace);
        assertArrayEquals(new int[] {3, 1, 9, 7}, ids(DistilrankRescorer.rescored(in, w)));
        assertArrayEquals(new int[] {1, 3, 0, 2}, Blend.order(new float[] {1f, 2f, 1f, 2f}));
    }
}
