package io.distilrank.opensearch;

import org.apache.lucene.util.BytesRef;

import java.util.Arrays;

/**
 * The token ids of one document's model text, written at index time into a {@code binary} field with doc values so a
 * rescore reads ids instead of reading and tokenizing text. Layout (version 1, written by
 * {@code distilrank.plugin.token_ids} in Python):
 * <pre>
 *   'D' 'R' 0x01 | fingerprint (8 bytes) | varint count | count x varint id
 * </pre>
 * varints are unsigned LEB128. The fingerprint is the first 8 bytes of the SHA-256 of the model zip's
 * {@code tokenizer.json}; ids are that tokenizer's {@code encode(text, add_special_tokens=False)} without truncation
 * (what {@link StudentTokenizer#tokenize} returns), so a rescore pairs them with the query exactly as it pairs text.
 */
final class TokenIds {
    static final int HEADER = 3;
    static final int FINGERPRINT_BYTES = 8;

    /** Why a document's ids could not be used (its text is read instead). */
    enum Miss { MISSING, TOKENIZER_MISMATCH, MALFORMED }

    private TokenIds() {}

    /** The first 8 bytes of {@code SHA-256(tokenizerJson)}. */
    static byte[] fingerprint(byte[] tokenizerJson) {
        return Arrays.copyOf(java.util.HexFormat.of().parseHex(StudentModel.sha256(tokenizerJson)), FINGERPRINT_BYTES);
    }

    /** The ids in {@code value}, or the reason they cannot be used with a tokenizer of {@code fingerprint}. */
    static Object decode(BytesRef value, byte[] fingerprint) {
        byte[] b = value.bytes;
        int p = value.offset;
        int end = value.offset + value.length;
        if (value.length < HEADER + FINGERPRINT_BYTES + 1 || b[p] != 'D' || b[p + 1] != 'R' || b[p + 2] != 1) {
            return Miss.MALFORMED;
        }
        p += HEADER;
        if (!Arrays.equals(b, p, p + FINGERPRINT_BYTES, fingerprint, 0, FINGERPRINT_BYTES)) {
            return Miss.TOKENIZER_MISMATCH;
        }
        p += FINGERPRINT_BYTES;
        long[] read = new long[2];
        if (!varint(b, p, end, read)) {
            return Miss.MALFORMED;
        }
        long count = read[0];
        p = (int) read[1];
        if (count > end - p) { // every id takes at least one byte
            return Miss.MALFORMED;
        }
        int[] ids = new int[(int) count];
        for (int i = 0; i < ids.length; i++) {
            if (!varint(b, p, end, read) || read[0] > Integer.MAX_VALUE) {
                return Miss.MALFORMED;
            }
            ids[i] = (int) read[0];
            p = (int) read[1];
        }
        return p == end ? ids : Miss.MALFORMED;
    }

    /** Reads one unsigned LEB128 varint at {@code p} into {@code out[0]}, the next position into {@code out[1]}. */
    private static boolean varint(byte[] b, int p, int end, long[] out) {
        long v = 0;
        for (int shift = 0; shift < 35; shift += 7) {
            if (p >= end) {
                return false;
            }
            int x = b[p++] & 0xff;
            v |= (long) (x & 0x7f) << shift;
            if ((x & 0x80) == 0) {
                out[0] = v;
                out[1] = p;
                return true;
            }
        }
        return false;
    }
}
