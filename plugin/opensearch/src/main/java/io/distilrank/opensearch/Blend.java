package io.distilrank.opensearch;

import java.util.Arrays;
import java.util.List;

/**
 * The blend of one shard's rescore window, bit for bit what {@code plugin/blend.py} computes offline:
 * {@code combined = query_weight * norm(s) + model_weight * norm(z)} over the window's first-pass scores {@code s} and
 * logits {@code z}, {@code norm} one of {@code none | min_max | z_score} applied per window (a window of one hit, a
 * zero range or a zero variance normalises to 0 for every hit), double arithmetic cast to float at the end. Sums
 * are numpy's pairwise summation, so means and standard deviations equal {@code numpy.mean} / {@code numpy.std}.
 * The window is sorted by combined score, descending, ties in first-pass order; hits past the window score below
 * the window's lowest combined score, strictly decreasing, in first-pass order.
 */
final class Blend {
    static final List<String> NORMALIZATIONS = List.of("none", "min_max", "z_score");

    private Blend() {}

    /** Window statistics of one signal: min, max, mean and population standard deviation (numpy's). */
    record Stats(double min, double max, double mean, double std) {
        static Stats of(double[] v) {
            if (v.length == 0) {
                return new Stats(0, 0, 0, 0);
            }
            double lo = v[0];
            double hi = v[0];
            for (double x : v) {
                lo = Math.min(lo, x);
                hi = Math.max(hi, x);
            }
            double mean = pairwiseSum(v, 0, v.length) / v.length;
            double[] sq = new double[v.length];
            for (int i = 0; i < v.length; i++) {
                double d = v[i] - mean;
                sq[i] = d * d;
            }
            return new Stats(lo, hi, mean, Math.sqrt(pairwiseSum(sq, 0, sq.length) / v.length));
        }
    }

    /** One window: its signals, their statistics, the normalised values and the combined scores. */
    record Window(String normalization, double queryWeight, double modelWeight, int[] docs, float[] firstPass, float[] logits,
                  Stats firstStats, Stats logitStats, double[] firstNorm, double[] logitNorm, float[] combined) {
        /** Position of {@code doc} in the window, or -1. */
        int indexOf(int doc) {
            for (int i = 0; i < docs.length; i++) {
                if (docs[i] == doc) {
                    return i;
                }
            }
            return -1;
        }
    }

    /** numpy's {@code pairwise_sum} (float64 {@code add.reduce} of a contiguous array), so the rounding is the same. */
    static double pairwiseSum(double[] a, int off, int n) {
        if (n < 8) {
            double res = 0.;
            for (int i = 0; i < n; i++) {
                res += a[off + i];
            }
            return res;
        }
        if (n <= 128) {
            double r0 = a[off];
            double r1 = a[off + 1];
            double r2 = a[off + 2];
            double r3 = a[off + 3];
            double r4 = a[off + 4];
            double r5 = a[off + 5];
            double r6 = a[off + 6];
            double r7 = a[off + 7];
            int i;
            for (i = 8; i < n - (n % 8); i += 8) {
                int j = off + i;
                r0 += a[j];
                r1 += a[j + 1];
                r2 += a[j + 2];
                r3 += a[j + 3];
                r4 += a[j + 4];
                r5 += a[j + 5];
                r6 += a[j + 6];
                r7 += a[j + 7];
            }
            double res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7));
            for (; i < n; i++) {
                res += a[off + i];
            }
            return res;
        }
        int n2 = n / 2;
        n2 -= n2 % 8;
        return pairwiseSum(a, off, n2) + pairwiseSum(a, off + n2, n - n2);
    }

    /** {@code v} normalised within the window; a zero range / zero variance (or one value) gives all zeros. */
    static double[] normalize(double[] v, Stats st, String normalization) {
        double[] out = new double[v.length];
        switch (normalization) {
            case "none" -> System.arraycopy(v, 0, out, 0, v.length);
            case "min_max" -> {
                double range = st.max() - st.min();
                if (st.max() > st.min()) {
                    for (int i = 0; i < v.length; i++) {
                        out[i] = (v[i] - st.min()) / range;
                    }
                }
            }
            case "z_score" -> {
                if (st.std() > 0) {
                    for (int i = 0; i < v.length; i++) {
                        out[i] = (v[i] - st.mean()) / st.std();
                    }
                }
            }
            default -> throw new IllegalArgumentException("normalization must be one of " + NORMALIZATIONS + ", got [" + normalization + "]");
        }
        return out;
    }

    static double[] widen(float[] x) {
        double[] v = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            v[i] = x[i];
        }
        return v;
    }

    /** The window's blend; {@code docs}, {@code firstPass} and {@code logits} aligned, in first-pass order. */
    static Window window(int[] docs, float[] firstPass, float[] logits, double queryWeight, double modelWeight, String normalization) {
        if (firstPass.length != logits.length || docs.length != logits.length) {
            throw new IllegalArgumentException(firstPass.length + " first-pass scores but " + logits.length + " logits");
        }
        double[] s = widen(firstPass);
        double[] z = widen(logits);
        Stats ss = Stats.of(s);
        Stats zs = Stats.of(z);
        double[] sn = normalize(s, ss, normalization);
        double[] zn = normalize(z, zs, normalization);
        float[] combined = new float[s.length];
        for (int i = 0; i < s.length; i++) {
            combined[i] = (float) (queryWeight * sn[i] + modelWeight * zn[i]);
        }
        return new Window(normalization, queryWeight, modelWeight, docs, firstPass, logits, ss, zs, sn, zn, combined);
    }

    /** Positions {@code 0..n-1} sorted by {@code combined} descending, ties in position order (a stable sort). */
    static int[] order(float[] combined) {
        Integer[] idx = new Integer[combined.length];
        for (int i = 0; i < idx.length; i++) {
            idx[i] = i;
        }
        Arrays.sort(idx, (a, b) -> {
            int c = Double.compare(combined[b], combined[a]);
            return c != 0 ? c : Integer.compare(a, b);
        });
        int[] out = new int[idx.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = idx[i];
        }
        return out;
    }

    /**
     * Scores for {@code count} hits past the window: {@code lowest - 1}, then each the next float down, so every one
     * is strictly below the window's lowest combined score and they keep their (first-pass) order.
     */
    static float[] belowWindow(float lowest, int count) {
        float[] out = new float[count];
        float next = lowest - 1f;
        if (!(next < lowest)) {
            next = Math.nextDown(lowest);
        }
        for (int i = 0; i < count; i++) {
            out[i] = next;
            next = Math.nextDown(next);
        }
        return out;
    }
}
