package io.distilrank.opensearch;

import java.util.List;
import java.util.Map;

/**
 * The text normalizers of a {@code tokenizer.json} that the exporter allows
 * ({@code distill/export/serving_tokenizer.py}: BertNormalizer, Sequence, Lowercase, NFKC, NFD, StripAccents).
 * Each maps a text to its normalized form exactly as the Rust {@code tokenizers} crate does.
 */
interface Normalizer {
    String normalize(String text);

    /** The normalizer described by a {@code "normalizer"} JSON object ({@code null}: identity). */
    @SuppressWarnings("unchecked")
    static Normalizer fromJson(Map<String, Object> spec) {
        if (spec == null) {
            return t -> t;
        }
        String type = (String) spec.get("type");
        switch (String.valueOf(type)) {
            case "BertNormalizer": {
                boolean lowercase = bool(spec, "lowercase", true);
                Object strip = spec.get("strip_accents");
                return new Bert(bool(spec, "clean_text", true), bool(spec, "handle_chinese_chars", true),
                    strip == null ? lowercase : (Boolean) strip, lowercase);
            }
            case "Lowercase":
                return t -> map(t, false, false, false, false, true);
            case "NFD":
                return t -> nfd(t);
            case "StripAccents":
                return t -> strip(t, false);
            case "NFKC":
                return t -> java.text.Normalizer.normalize(t, java.text.Normalizer.Form.NFKC);
            case "Sequence": {
                List<Normalizer> parts = ((List<Map<String, Object>>) spec.get("normalizers")).stream().map(Normalizer::fromJson).toList();
                return t -> {
                    for (Normalizer n : parts) {
                        t = n.normalize(t);
                    }
                    return t;
                };
            }
            default:
                throw new IllegalArgumentException("tokenizer.json: normalizer type [" + type + "] is not supported by the distilrank "
                    + "rescorer (supported: BertNormalizer, Sequence, Lowercase, NFKC, NFD, StripAccents)");
        }
    }

    private static boolean bool(Map<String, Object> spec, String key, boolean dflt) {
        Object v = spec.get(key);
        return v == null ? dflt : (Boolean) v;
    }

    /** BertNormalizer: clean_text, then CJK padding, then NFD + strip non-spacing marks, then lowercase. */
    record Bert(boolean cleanText, boolean chineseChars, boolean stripAccents, boolean lowercase) implements Normalizer {
        @Override
        public String normalize(String text) {
            return map(text, cleanText, chineseChars, stripAccents, stripAccents, lowercase);
        }
    }

    private static String nfd(String text) {
        StringBuilder out = new StringBuilder(text.length());
        text.codePoints().forEach(cp -> UnicodeTables.appendNfd(out, cp));
        return out.toString();
    }

    /** Drops non-spacing marks (BertNormalizer) or every combining mark (the StripAccents normalizer). */
    private static String strip(String text, boolean nonspacingOnly) {
        StringBuilder out = new StringBuilder(text.length());
        text.codePoints().filter(cp -> !(nonspacingOnly ? UnicodeTables.nonspacing(cp) : UnicodeTables.mark(cp))).forEach(out::appendCodePoint);
        return out.toString();
    }

    /** The BertNormalizer steps in their order; each flag switches one step. */
    private static String map(String text, boolean clean, boolean cjk, boolean nfd, boolean strip, boolean lower) {
        StringBuilder a = new StringBuilder(text.length() + 8);
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            i += Character.charCount(cp);
            if (clean) {
                if (UnicodeTables.removed(cp)) {
                    continue;
                }
                if (UnicodeTables.cleanWhitespace(cp)) {
                    cp = ' ';
                }
            }
            if (cjk && UnicodeTables.cjk(cp)) {
                a.append(' ').appendCodePoint(cp).append(' ');
            } else {
                a.appendCodePoint(cp);
            }
        }
        String s = a.toString();
        if (nfd) {
            s = nfd(s);
        }
        if (strip) {
            s = strip(s, true);
        }
        if (!lower) {
            return s;
        }
        StringBuilder out = new StringBuilder(s.length());
        s.codePoints().forEach(cp -> UnicodeTables.appendLower(out, cp));
        return out.toString();
    }
}
