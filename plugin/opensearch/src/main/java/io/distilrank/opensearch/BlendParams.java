package io.distilrank.opensearch;

import java.util.Map;
import java.util.Set;

/**
 * {@code score_mode}, {@code query_weight}, {@code model_weight} and {@code normalization} of one rescore: as the
 * request body gave them ({@code null} = not given) or, after {@link #resolve}, the values the shards use.
 *
 * <p>Precedence, field by field: the request body, then the {@code blend} settings stored in the model's upload
 * record ({@code .distilrank-models}, written by {@code distilrank plugin register} from the model card), then the
 * defaults {@code 1.0, 1.0, none}. {@code score_mode}: the body's if given, else {@code blend} when the record has
 * {@code blend} settings, else {@code replace}. {@code replace} scores with the logit alone (weights and
 * normalisation do not apply).
 */
record BlendParams(String scoreMode, Double queryWeight, Double modelWeight, String normalization) {
    static final Set<String> STORED_KEYS = Set.of("query_weight", "model_weight", "normalization", "score_mode");
    static final BlendParams NONE_GIVEN = new BlendParams(null, null, null, null);

    /** Checks the values that were given; {@link IllegalArgumentException} names the field. */
    BlendParams {
        if (scoreMode != null && !scoreMode.equals("replace") && !scoreMode.equals("blend")) {
            throw new IllegalArgumentException("score_mode must be replace or blend, got [" + scoreMode + "]");
        }
        if (normalization != null && !Blend.NORMALIZATIONS.contains(normalization)) {
            throw new IllegalArgumentException("normalization must be one of none, min_max, z_score, got [" + normalization + "]");
        }
        if (queryWeight != null && !Double.isFinite(queryWeight)) {
            throw new IllegalArgumentException("query_weight must be a finite number, got [" + queryWeight + "]");
        }
        if (modelWeight != null && !Double.isFinite(modelWeight)) {
            throw new IllegalArgumentException("model_weight must be a finite number, got [" + modelWeight + "]");
        }
    }

    /**
     * The blend settings of an upload record ({@code {"query_weight", "model_weight", "normalization"}} and optionally
     * {@code "score_mode": "blend"}), or {@link #NONE_GIVEN} for {@code null}. Unknown keys, wrong types and bad values
     * are an {@link IllegalArgumentException} naming them.
     */
    static BlendParams fromStored(Map<String, Object> stored) {
        if (stored == null) {
            return NONE_GIVEN;
        }
        for (String k : stored.keySet()) {
            if (!STORED_KEYS.contains(k)) {
                throw new IllegalArgumentException("unknown blend setting [" + k + "] (known: "
                    + String.join(", ", STORED_KEYS.stream().sorted().toList()) + ")");
            }
        }
        Object mode = stored.get("score_mode");
        if (mode != null && !"blend".equals(mode)) {
            throw new IllegalArgumentException("stored blend settings may only say score_mode blend, got [" + mode + "]");
        }
        Object norm = stored.get("normalization");
        if (norm != null && !(norm instanceof String)) {
            throw new IllegalArgumentException("normalization must be a string, got [" + norm + "]");
        }
        return new BlendParams((String) mode, number(stored, "query_weight"), number(stored, "model_weight"), (String) norm);
    }

    private static Double number(Map<String, Object> m, String key) {
        Object v = m.get(key);
        if (v == null) {
            return null;
        }
        if (!(v instanceof Number n)) {
            throw new IllegalArgumentException(key + " must be a number, got [" + v + "]");
        }
        return n.doubleValue();
    }

    /** This (the request body) over {@code stored} (the model's settings), over the defaults; every field set. */
    BlendParams resolve(BlendParams stored) {
        boolean hasStored = stored.scoreMode != null || stored.queryWeight != null || stored.modelWeight != null
            || stored.normalization != null;
        String mode = scoreMode != null ? scoreMode : hasStored ? "blend" : "replace";
        return new BlendParams(mode, first(queryWeight, stored.queryWeight, 1.0), first(modelWeight, stored.modelWeight, 1.0),
            normalization != null ? normalization : stored.normalization != null ? stored.normalization : "none");
    }

    private static Double first(Double body, Double stored, double dflt) {
        return body != null ? body : stored != null ? stored : dflt;
    }

    boolean replace() {
        return "replace".equals(scoreMode);
    }
}
