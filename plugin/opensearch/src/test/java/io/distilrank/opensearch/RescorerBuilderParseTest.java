package io.distilrank.opensearch;

import org.junit.jupiter.api.Test;
import org.opensearch.common.io.stream.BytesStreamOutput;
import org.opensearch.common.xcontent.json.JsonXContent;
import org.opensearch.core.common.ParsingException;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.xcontent.DeprecationHandler;
import org.opensearch.core.xcontent.NamedXContentRegistry;
import org.opensearch.core.xcontent.XContentParser;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The request body of the rescorer: parsing, validation messages and the wire format. */
class RescorerBuilderParseTest {
    private static final ModelCache CACHE = new ModelCache(2, 1);

    private static DistilrankRescorerBuilder parse(String json) throws Exception {
        try (XContentParser p = JsonXContent.jsonXContent.createParser(NamedXContentRegistry.EMPTY,
            DeprecationHandler.THROW_UNSUPPORTED_OPERATION, json)) {
            p.nextToken();
            return DistilrankRescorerBuilder.fromXContent(p, CACHE);
        }
    }

    @Test
    void parsesTheDocumentedBody() throws Exception {
        DistilrankRescorerBuilder b = parse("{\"model\": \"prod\", \"query_text\": \"wireless mouse\", \"fields\": [\"title\", \"brand\"], "
            + "\"score_mode\": \"blend\", \"query_weight\": 0.5, \"model_weight\": 2}");
        assertEquals("prod", b.model());
        assertEquals("wireless mouse", b.queryText());
        assertEquals(List.of("title", "brand"), b.fields());
        assertEquals("blend", b.scoreMode());
        BytesStreamOutput out = new BytesStreamOutput();
        b.windowSize(100);
        b.writeTo(out);
        StreamInput in = out.bytes().streamInput();
        DistilrankRescorerBuilder back = new DistilrankRescorerBuilder(in, CACHE);
        assertEquals(b, back);
        assertEquals(100, back.windowSize());
        assertEquals(new BlendParams("blend", 0.5, 2.0, null), b.given());
    }

    private static DistilrankRescorerBuilder roundTrip(DistilrankRescorerBuilder b) throws Exception {
        BytesStreamOutput out = new BytesStreamOutput();
        b.writeTo(out);
        return new DistilrankRescorerBuilder(out.bytes().streamInput(), CACHE);
    }

    @Test
    void normalizationIsParsedAndTravelsWithTheResolvedBlend() throws Exception {
        DistilrankRescorerBuilder b = parse("{\"model\": \"prod\", \"query_text\": \"q\", \"fields\": [\"title\"], "
            + "\"normalization\": \"z_score\", \"query_weight\": 0.3}");
        assertEquals(new BlendParams(null, 0.3, null, "z_score"), b.given());
        assertNull(b.scoreMode(), "score_mode not given: the node resolves it from the model's stored settings");
        assertNull(b.resolved());
        DistilrankRescorerBuilder back = roundTrip(b);
        assertEquals(b, back);
        assertNull(back.resolved());
        BlendParams stored = BlendParams.fromStored(Map.of("query_weight", 2.0, "model_weight", 0.25, "normalization", "min_max"));
        DistilrankRescorerBuilder resolved = b.resolvedTo("m-1", "ab".repeat(32), b.given().resolve(stored));
        assertEquals(new BlendParams("blend", 0.3, 0.25, "z_score"), resolved.resolved());
        DistilrankRescorerBuilder again = roundTrip(resolved);
        assertEquals(resolved, again);
        assertEquals(new BlendParams("blend", 0.3, 0.25, "z_score"), again.resolved());
        assertNotEquals(b, resolved);
        String json = resolved.toString().replaceAll("\\s", "");
        assertTrue(json.contains("\"normalization\":\"z_score\"") && !json.contains("score_mode"), json);
    }

    @Test
    void aSingleFieldStringIsAccepted() throws Exception {
        assertEquals(List.of("title"), parse("{\"model\": \"m1\", \"query_text\": \"q\", \"fields\": \"title\"}").fields());
    }

    @Test
    void badRequestsNameTheProblem() {
        String[][] cases = {
            {"{\"query_text\": \"q\", \"fields\": [\"title\"]}", "model is required"},
            {"{\"model\": \"prod\", \"fields\": [\"title\"]}", "query_text is required"},
            {"{\"model\": \"prod\", \"query_text\": \"q\"}", "fields is required"},
            {"{\"model\": \"prod\", \"query_text\": \"q\", \"fields\": [\"t\"], \"score_mode\": \"max\"}", "score_mode must be replace or blend"},
            {"{\"model\": \"prod\", \"query_text\": \"q\", \"fields\": [\"t\"], \"text_source\": \"docvalues\"}", "text_source must be"},
            {"{\"model\": \"prod\", \"query_text\": \"q\", \"fields\": [\"t\"], \"depth\": 3}", "unknown field [depth]"},
            {"{\"model\": \"prod\", \"query_text\": \"q\", \"fields\": [\"t\"], \"normalization\": \"minmax\"}",
                "normalization must be one of none, min_max, z_score, got [minmax]"},
            {"{\"model\": \"prod\", \"query_text\": \"q\", \"fields\": [\"t\"], \"normalization\": \"L2\", \"score_mode\": \"blend\"}",
                "normalization must be one of"},
        };
        for (String[] c : cases) {
            ParsingException e = assertThrows(ParsingException.class, () -> parse(c[0]), c[0]);
            assertTrue(e.getMessage().contains(c[1]), e.getMessage());
        }
    }
}
