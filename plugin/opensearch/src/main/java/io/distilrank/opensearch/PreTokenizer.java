package io.distilrank.opensearch;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The pre-tokenizers of a {@code tokenizer.json} that the exporter allows (BertPreTokenizer, Whitespace,
 * WhitespaceSplit, Punctuation with the default {@code Isolated} behaviour, Sequence): split a normalized text
 * into words, as the Rust {@code tokenizers} crate does.
 */
interface PreTokenizer {
    /** Appends the words of {@code text} to {@code out}. */
    void split(String text, List<String> out);

    @SuppressWarnings("unchecked")
    static PreTokenizer fromJson(Map<String, Object> spec) {
        if (spec == null) {
            return (t, out) -> {
                if (!t.isEmpty()) {
                    out.add(t);
                }
            };
        }
        String type = String.valueOf(spec.get("type"));
        switch (type) {
            case "BertPreTokenizer":
                return (t, out) -> splitWhitespaceAndPunctuation(t, true, true, out);
            case "WhitespaceSplit":
                return (t, out) -> splitWhitespaceAndPunctuation(t, true, false, out);
            case "Punctuation": {
                Object behavior = spec.get("behavior");
                if (behavior != null && !"Isolated".equals(behavior)) {
                    throw new IllegalArgumentException("tokenizer.json: Punctuation behavior [" + behavior + "] is not supported "
                        + "by the distilrank rescorer (only Isolated)");
                }
                return (t, out) -> splitWhitespaceAndPunctuation(t, false, true, out);
            }
            case "Whitespace":
                return PreTokenizer::splitWordsRegex;
            case "Sequence": {
                List<PreTokenizer> parts = ((List<Map<String, Object>>) spec.get("pretokenizers")).stream()
                    .map(PreTokenizer::fromJson).toList();
                return (t, out) -> {
                    List<String> cur = List.of(t);
                    for (PreTokenizer p : parts) {
                        List<String> next = new ArrayList<>();
                        for (String piece : cur) {
                            p.split(piece, next);
                        }
                        cur = next;
                    }
                    out.addAll(cur);
                };
            }
            default:
                throw new IllegalArgumentException("tokenizer.json: pre_tokenizer type [" + type + "] is not supported by the "
                    + "distilrank rescorer (supported: BertPreTokenizer, Whitespace, WhitespaceSplit, Punctuation, Sequence)");
        }
    }

    /** Removes whitespace (when {@code onWhitespace}) and isolates each punctuation character (when {@code onPunct}). */
    static void splitWhitespaceAndPunctuation(String text, boolean onWhitespace, boolean onPunct, List<String> out) {
        int start = -1;
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            int next = i + Character.charCount(cp);
            if (onWhitespace && UnicodeTables.whitespace(cp)) {
                if (start >= 0) {
                    out.add(text.substring(start, i));
                    start = -1;
                }
            } else if (onPunct && UnicodeTables.punctuation(cp)) {
                if (start >= 0) {
                    out.add(text.substring(start, i));
                    start = -1;
                }
                out.add(text.substring(i, next));
            } else if (start < 0) {
                start = i;
            }
            i = next;
        }
        if (start >= 0) {
            out.add(text.substring(start));
        }
    }

    Pattern WORDS = Pattern.compile("\\w+|[^\\w\\s]+", Pattern.UNICODE_CHARACTER_CLASS);

    /** The {@code Whitespace} pre-tokenizer: the regex {@code \w+|[^\w\s]+}. */
    static void splitWordsRegex(String text, List<String> out) {
        Matcher m = WORDS.matcher(text);
        while (m.find()) {
            out.add(m.group());
        }
    }
}
