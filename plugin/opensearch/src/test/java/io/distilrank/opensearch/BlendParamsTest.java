package io.distilrank.opensearch;

import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Precedence of the request body over the blend settings stored with the model, over the defaults. */
class BlendParamsTest {
    private static final Map<String, Object> STORED = Map.of("query_weight", 0.3, "model_weight", 2, "normalization", "z_score");

    private static BlendParams resolve(BlendParams body, Map<String, Object> stored) {
        return body.resolve(BlendParams.fromStored(stored));
    }

    @Test
    void withoutStoredSettingsTheDefaultsApply() {
        assertEquals(new BlendParams("replace", 1.0, 1.0, "none"), resolve(BlendParams.NONE_GIVEN, null));
        assertEquals(new BlendParams("blend", 0.5, 1.0, "none"), resolve(new BlendParams("blend", 0.5, null, null), null));
        assertEquals(new BlendParams("replace", 1.0, 1.0, "min_max"), resolve(new BlendParams(null, null, null, "min_max"), null));
    }

    @Test
    void storedSettingsMakeItABlendUnlessTheBodySaysReplace() {
        assertEquals(new BlendParams("blend", 0.3, 2.0, "z_score"), resolve(BlendParams.NONE_GIVEN, STORED));
        BlendParams replace = resolve(new BlendParams("replace", null, null, null), STORED);
        assertEquals("replace", replace.scoreMode());
        assertTrue(replace.replace());
    }

    @Test
    void theBodyOverridesFieldByField() {
        assertEquals(new BlendParams("blend", 0.3, 2.0, "min_max"), resolve(new BlendParams(null, null, null, "min_max"), STORED));
        assertEquals(new BlendParams("blend", 1.5, 2.0, "z_score"), resolve(new BlendParams(null, 1.5, null, null), STORED));
        assertEquals(new BlendParams("blend", 0.0, 4.0, "none"), resolve(new BlendParams("blend", 0.0, 4.0, "none"), STORED));
        Map<String, Object> partial = Map.of("normalization", "min_max", "score_mode", "blend");
        assertEquals(new BlendParams("blend", 1.0, 1.0, "min_max"), resolve(BlendParams.NONE_GIVEN, partial));
    }

    @Test
    void badStoredSettingsNameTheProblem() {
        Object[][] cases = {
            {Map.of("normalization", "rank"), "normalization must be one of none, min_max, z_score, got [rank]"},
            {Map.of("query_weight", "heavy"), "query_weight must be a number"},
            {Map.of("model_weight", Double.NaN), "model_weight must be a finite number"},
            {Map.of("score_mode", "replace"), "may only say score_mode blend"},
            {Map.of("weight", 1), "unknown blend setting [weight]"},
        };
        for (Object[] c : cases) {
            @SuppressWarnings("unchecked")
            Map<String, Object> stored = new HashMap<>((Map<String, Object>) c[0]);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> BlendParams.fromStored(stored), stored.toString());
            assertTrue(e.getMessage().contains((String) c[1]), e.getMessage());
        }
    }
}
