package io.distilrank.opensearch;

import org.apache.lucene.util.BytesRef;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Index-time token ids written by Python ({@code distilrank.plugin.token_ids}) decode to the Java tokenizer's ids. */
class TokenIdsTest {
    @ParameterizedTest
    @ValueSource(strings = {"student", "student-trunc24", "minilm"})
    void pythonIdsEqualJavaTokenizerIds(String name) throws Exception {
        byte[] json = Files.readAllBytes(Fixtures.dir().resolve(name + ".tokenizer.json"));
        StudentTokenizer tok = StudentTokenizer.fromJson(Fixtures.text(name + ".tokenizer.json"));
        byte[] fingerprint = TokenIds.fingerprint(json);
        List<Map<String, Object>> rows = Fixtures.jsonl(name + ".token_ids.jsonl");
        assertTrue(rows.size() >= 11_000, "expected the parity sample + real titles + edge cases, got " + rows.size());
        List<String> mismatches = new ArrayList<>();
        for (Map<String, Object> r : rows) {
            Object decoded = TokenIds.decode(new BytesRef(Base64.getDecoder().decode((String) r.get("b64"))), fingerprint);
            int[] java = tok.tokenize((String) r.get("d"));
            if (!(decoded instanceof int[] ids) || !Arrays.equals(ids, java)) {
                mismatches.add("d=" + r.get("d") + " python=" + (decoded instanceof int[] a ? Arrays.toString(a) : decoded)
                    + " java=" + Arrays.toString(java));
            }
        }
        assertEquals(List.of(), mismatches.subList(0, Math.min(5, mismatches.size())), mismatches.size() + " of " + rows.size() + " differ");
    }

    @Test
    void anotherTokenizersIdsAreRefused() throws Exception {
        byte[] student = Files.readAllBytes(Fixtures.dir().resolve("student.tokenizer.json"));
        byte[] minilm = Files.readAllBytes(Fixtures.dir().resolve("minilm.tokenizer.json"));
        Map<String, Object> row = Fixtures.jsonl("student.token_ids.jsonl").get(900);
        BytesRef value = new BytesRef(Base64.getDecoder().decode((String) row.get("b64")));
        assertTrue(TokenIds.decode(value, TokenIds.fingerprint(student)) instanceof int[]);
        assertEquals(TokenIds.Miss.TOKENIZER_MISMATCH, TokenIds.decode(value, TokenIds.fingerprint(minilm)));
    }

    @Test
    void malformedValuesAreRefused() throws Exception {
        byte[] fp = TokenIds.fingerprint(Files.readAllBytes(Fixtures.dir().resolve("student.tokenizer.json")));
        byte[] good = Base64.getDecoder().decode((String) Fixtures.jsonl("student.token_ids.jsonl").get(900).get("b64"));
        assertTrue(good.length > 13);
        assertEquals(TokenIds.Miss.MALFORMED, TokenIds.decode(new BytesRef(Arrays.copyOf(good, good.length - 1)), fp), "truncated");
        byte[] extra = Arrays.copyOf(good, good.length + 1);
        assertEquals(TokenIds.Miss.MALFORMED, TokenIds.decode(new BytesRef(extra), fp), "trailing byte");
        byte[] badMagic = good.clone();
        badMagic[0] = 'X';
        assertEquals(TokenIds.Miss.MALFORMED, TokenIds.decode(new BytesRef(badMagic), fp), "bad header");
        assertEquals(TokenIds.Miss.MALFORMED, TokenIds.decode(new BytesRef(new byte[0]), fp), "empty");
        // an offset slice (how doc values hand out bytes) decodes like the array itself
        byte[] padded = new byte[good.length + 7];
        System.arraycopy(good, 0, padded, 5, good.length);
        assertArrayEquals((int[]) TokenIds.decode(new BytesRef(good), fp), (int[]) TokenIds.decode(new BytesRef(padded, 5, good.length), fp));
    }
}
