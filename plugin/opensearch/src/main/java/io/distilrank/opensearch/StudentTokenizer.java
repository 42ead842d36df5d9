package io.distilrank.opensearch;

import org.opensearch.common.xcontent.json.JsonXContent;
import org.opensearch.core.xcontent.DeprecationHandler;
import org.opensearch.core.xcontent.NamedXContentRegistry;
import org.opensearch.core.xcontent.XContentParser;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A Java port of the Hugging Face {@code tokenizers} pipeline for the {@code tokenizer.json} files distilrank
 * exports, producing the ids ML Commons feeds the graph for {@code encode(query, document)}:
 * added (special) tokens split first on the raw text, then the normalizer, the pre-tokenizer, the model
 * ({@code WordLevel} or {@code WordPiece}), the post-processor ({@code TemplateProcessing} or
 * {@code BertProcessing}) and {@code LongestFirst} truncation at {@code truncation.max_length} (special tokens
 * counted). Anything else in the json is refused with an {@link IllegalArgumentException} naming it.
 * Instances are immutable and thread-safe.
 */
public final class StudentTokenizer {
    /** Token ids and token type ids of one encoded pair. */
    public record Encoding(int[] ids, int[] typeIds) {}

    private record Added(String content, int id) {}

    private record Piece(boolean special, int id, int typeId, boolean isSequence, int sequence) {}

    private final Normalizer normalizer;
    private final PreTokenizer preTokenizer;
    private final Map<String, Integer> vocab;
    private final int unkId;
    private final boolean wordPiece;
    private final String subwordPrefix;
    private final int maxInputChars;
    private final List<Added> added;
    private final List<Piece> single;
    private final List<Piece> pair;
    private final int maxLength;
    private final boolean onlySecond;

    private StudentTokenizer(Map<String, Object> spec) {
        normalizer = Normalizer.fromJson(map(spec.get("normalizer")));
        preTokenizer = PreTokenizer.fromJson(map(spec.get("pre_tokenizer")));
        Map<String, Object> model = map(spec.get("model"));
        if (model == null) {
            throw new IllegalArgumentException("tokenizer.json has no model");
        }
        String modelType = String.valueOf(model.get("type"));
        if (!modelType.equals("WordLevel") && !modelType.equals("WordPiece")) {
            throw new IllegalArgumentException("tokenizer.json: model type [" + modelType + "] is not supported by the distilrank "
                + "rescorer (supported: WordLevel, WordPiece)");
        }
        wordPiece = modelType.equals("WordPiece");
        vocab = new HashMap<>();
        for (Map.Entry<String, Object> e : map(model.get("vocab")).entrySet()) {
            vocab.put(e.getKey(), ((Number) e.getValue()).intValue());
        }
        String unk = (String) model.getOrDefault("unk_token", "[UNK]");
        Integer u = vocab.get(unk);
        if (u == null) {
            throw new IllegalArgumentException("tokenizer.json: unk_token [" + unk + "] is not in the vocabulary");
        }
        unkId = u;
        subwordPrefix = (String) model.getOrDefault("continuing_subword_prefix", "##");
        maxInputChars = ((Number) model.getOrDefault("max_input_chars_per_word", 100)).intValue();
        added = new ArrayList<>();
        Object addedSpec = spec.get("added_tokens");
        if (addedSpec instanceof List<?> list) {
            for (Object o : list) {
                Map<String, Object> t = map(o);
                if (Boolean.TRUE.equals(t.get("normalized")) || Boolean.TRUE.equals(t.get("lstrip")) || Boolean.TRUE.equals(t.get("rstrip"))
                    || Boolean.TRUE.equals(t.get("single_word"))) {
                    throw new IllegalArgumentException("tokenizer.json: added token " + t.get("content") + " uses normalized/lstrip/rstrip/"
                        + "single_word, which the distilrank rescorer does not support");
                }
                added.add(new Added((String) t.get("content"), ((Number) t.get("id")).intValue()));
            }
        }
        Map<String, Object> post = map(spec.get("post_processor"));
        String postType = post == null ? "null" : String.valueOf(post.get("type"));
        if (postType.equals("TemplateProcessing")) {
            Map<String, Integer> specialIds = new HashMap<>();
            for (Map.Entry<String, Object> e : map(post.get("special_tokens")).entrySet()) {
                List<?> ids = (List<?>) map(e.getValue()).get("ids");
                if (ids.size() != 1) {
                    throw new IllegalArgumentException("tokenizer.json: special token " + e.getKey() + " maps to " + ids.size() + " ids (1 supported)");
                }
                specialIds.put(e.getKey(), ((Number) ids.get(0)).intValue());
            }
            single = template(post.get("single"), specialIds);
            pair = template(post.get("pair"), specialIds);
        } else if (postType.equals("BertProcessing")) {
            int sep = ((Number) ((List<?>) post.get("sep")).get(1)).intValue();
            int cls = ((Number) ((List<?>) post.get("cls")).get(1)).intValue();
            single = List.of(new Piece(true, cls, 0, false, 0), new Piece(false, 0, 0, true, 0), new Piece(true, sep, 0, false, 0));
            pair = List.of(new Piece(true, cls, 0, false, 0), new Piece(false, 0, 0, true, 0), new Piece(true, sep, 0, false, 0),
                new Piece(false, 0, 1, true, 1), new Piece(true, sep, 1, false, 0));
        } else {
            throw new IllegalArgumentException("tokenizer.json: post_processor type [" + postType + "] is not supported by the "
                + "distilrank rescorer (supported: TemplateProcessing, BertProcessing)");
        }
        Map<String, Object> trunc = map(spec.get("truncation"));
        if (trunc == null) {
            maxLength = Integer.MAX_VALUE;
            onlySecond = false;
        } else {
            String strategy = String.valueOf(trunc.getOrDefault("strategy", "LongestFirst"));
            if (!strategy.equals("LongestFirst") && !strategy.equals("OnlySecond")) {
                throw new IllegalArgumentException("tokenizer.json: truncation strategy [" + strategy + "] is not supported (LongestFirst, OnlySecond)");
            }
            if (!"Right".equals(trunc.getOrDefault("direction", "Right")) || ((Number) trunc.getOrDefault("stride", 0)).intValue() != 0) {
                throw new IllegalArgumentException("tokenizer.json: only right truncation with stride 0 is supported");
            }
            maxLength = ((Number) trunc.get("max_length")).intValue();
            onlySecond = strategy.equals("OnlySecond");
        }
    }

    /** Parses a {@code tokenizer.json} document; throws {@link IllegalArgumentException} for unsupported components. */
    public static StudentTokenizer fromJson(String json) {
        try (XContentParser p = JsonXContent.jsonXContent.createParser(NamedXContentRegistry.EMPTY,
            DeprecationHandler.THROW_UNSUPPORTED_OPERATION, json)) {
            return new StudentTokenizer(p.map());
        } catch (IOException e) {
            throw new IllegalArgumentException("tokenizer.json is not valid JSON: " + e.getMessage(), e);
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> map(Object o) {
        return (Map<String, Object>) o;
    }

    private static List<Piece> template(Object spec, Map<String, Integer> specialIds) {
        List<Piece> out = new ArrayList<>();
        for (Object o : (List<?>) spec) {
            Map<String, Object> item = map(o);
            if (item.containsKey("SpecialToken")) {
                Map<String, Object> s = map(item.get("SpecialToken"));
                Integer id = specialIds.get((String) s.get("id"));
                if (id == null) {
                    throw new IllegalArgumentException("tokenizer.json: template uses unknown special token " + s.get("id"));
                }
                out.add(new Piece(true, id, ((Number) s.get("type_id")).intValue(), false, 0));
            } else {
                Map<String, Object> s = map(item.get("Sequence"));
                out.add(new Piece(false, 0, ((Number) s.get("type_id")).intValue(), true, "A".equals(s.get("id")) ? 0 : 1));
            }
        }
        return out;
    }

    /** Vocabulary size (largest id + 1, added tokens included). */
    public int vocabSize() {
        int max = vocab.values().stream().mapToInt(Integer::intValue).max().orElse(-1);
        for (Added a : added) {
            max = Math.max(max, a.id());
        }
        return max + 1;
    }

    /** The ids of one text, without special tokens and without truncation. */
    public int[] tokenize(String text) {
        IntList out = new IntList(16);
        int segStart = 0;
        int i = 0;
        while (i < text.length()) {
            Added match = null;
            for (Added a : added) {
                if (text.startsWith(a.content(), i) && (match == null || a.content().length() > match.content().length())) {
                    match = a;
                }
            }
            if (match == null) {
                i++;
                continue;
            }
            encodeSegment(text.substring(segStart, i), out);
            out.add(match.id());
            i += match.content().length();
            segStart = i;
        }
        encodeSegment(text.substring(segStart), out);
        return out.toArray();
    }

    private void encodeSegment(String raw, IntList out) {
        if (raw.isEmpty()) {
            return;
        }
        List<String> words = new ArrayList<>();
        preTokenizer.split(normalizer.normalize(raw), words);
        for (String w : words) {
            if (wordPiece) {
                wordPiece(w, out);
            } else {
                out.add(vocab.getOrDefault(w, unkId));
            }
        }
    }

    private void wordPiece(String word, IntList out) {
        if (word.codePointCount(0, word.length()) > maxInputChars) {
            out.add(unkId);
            return;
        }
        IntList ids = new IntList(4);
        int start = 0;
        while (start < word.length()) {
            int end = word.length();
            Integer found = null;
            while (start < end) {
                String sub = word.substring(start, end);
                if (start > 0) {
                    sub = subwordPrefix + sub;
                }
                found = vocab.get(sub);
                if (found != null) {
                    break;
                }
                end = word.offsetByCodePoints(end, -1);
            }
            if (found == null) {
                out.add(unkId);
                return;
            }
            ids.add(found);
            start = end;
        }
        out.addAll(ids);
    }

    /** {@code encode(query, document)} with special tokens and truncation, as ML Commons calls it. */
    public Encoding encodePair(String query, String document) {
        return encodePair(tokenize(query), tokenize(document));
    }

    /** The pair encoding of already tokenized texts (so a query is tokenized once per window). */
    public Encoding encodePair(int[] a, int[] b) {
        int addedTokens = 0;
        for (Piece p : pair) {
            if (p.special()) {
                addedTokens++;
            }
        }
        int limit = maxLength == Integer.MAX_VALUE ? Integer.MAX_VALUE : maxLength - addedTokens;
        int n1 = a.length;
        int n2 = b.length;
        if ((long) n1 + n2 > limit) {
            if (onlySecond) {
                n2 = Math.max(0, limit - n1);
            } else {
                boolean swap = n1 > n2;
                int s = Math.min(n1, n2);
                int l = Math.max(n1, n2);
                l = s > limit ? s : Math.max(s, limit - s);
                if (s + l > limit) {
                    s = limit / 2;
                    l = s + limit % 2;
                }
                n1 = swap ? l : s;
                n2 = swap ? s : l;
            }
            a = Arrays.copyOf(a, Math.min(n1, a.length));
            b = Arrays.copyOf(b, Math.min(n2, b.length));
        }
        IntList ids = new IntList(a.length + b.length + addedTokens);
        IntList types = new IntList(a.length + b.length + addedTokens);
        for (Piece p : pair) {
            if (p.special()) {
                ids.add(p.id());
                types.add(p.typeId());
            } else {
                int[] seq = p.sequence() == 0 ? a : b;
                ids.addAll(seq);
                for (int k = 0; k < seq.length; k++) {
                    types.add(p.typeId());
                }
            }
        }
        return new Encoding(ids.toArray(), types.toArray());
    }

    /** A growable int array. */
    static final class IntList {
        private int[] data;
        private int size;

        IntList(int capacity) {
            data = new int[Math.max(4, capacity)];
        }

        void add(int v) {
            if (size == data.length) {
                data = Arrays.copyOf(data, data.length * 2);
            }
            data[size++] = v;
        }

        void addAll(int[] vs) {
            for (int v : vs) {
                add(v);
            }
        }

        void addAll(IntList vs) {
            for (int k = 0; k < vs.size; k++) {
                add(vs.data[k]);
            }
        }

        int[] toArray() {
            return Arrays.copyOf(data, size);
        }
    }
}
