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

import static org.junit.jupiter.api.Assertions.assertEquals;
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
        };
        for (String[] c : cases) {
            ParsingException e = assertThrows(ParsingException.class, () -> parse(c[0]), c[0]);
            assertTrue(e.getMessage().contains(c[1]), e.getMessage());
        }
    }
}
