package io.distilrank.opensearch;

import org.apache.lucene.index.DocValues;
import org.apache.lucene.index.FieldInfo;
import org.apache.lucene.index.LeafReaderContext;
import org.apache.lucene.index.ReaderUtil;
import org.apache.lucene.index.SortedSetDocValues;
import org.apache.lucene.index.StoredFieldVisitor;
import org.apache.lucene.index.StoredFields;
import org.apache.lucene.search.IndexSearcher;
import org.opensearch.common.xcontent.XContentHelper;
import org.opensearch.common.xcontent.support.XContentMapValues;
import org.opensearch.core.common.bytes.BytesArray;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads the text the model scores for each document of a rescore window: the values of {@code fields}, joined by
 * one space (several values of one field too), from {@code _source}, from stored fields, or from the doc values of
 * keyword fields (columnar: no stored-fields block to decompress; several values of one document come back sorted
 * and deduplicated, as Lucene keeps them, so use it for single-valued fields). A document without any of the fields
 * gets an empty text. Documents are visited in doc-id order (sequential access).
 */
final class DocumentTexts {
    /** Where the texts are read from. */
    enum Source { SOURCE, STORED, DOC_VALUES }

    private DocumentTexts() {}

    static String[] read(IndexSearcher searcher, int[] docs, List<String> fields, Source source) throws IOException {
        List<LeafReaderContext> leaves = searcher.getIndexReader().leaves();
        Integer[] order = new Integer[docs.length];
        for (int i = 0; i < docs.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Integer.compare(docs[a], docs[b]));
        String[] out = new String[docs.length];
        int leafIndex = -1;
        StoredFields storedFields = null;
        SortedSetDocValues[] docValues = new SortedSetDocValues[fields.size()];
        LeafReaderContext leaf = null;
        for (Integer i : order) {
            int li = ReaderUtil.subIndex(docs[i], leaves);
            if (li != leafIndex) {
                leafIndex = li;
                leaf = leaves.get(li);
                if (source == Source.DOC_VALUES) {
                    for (int f = 0; f < fields.size(); f++) {
                        docValues[f] = DocValues.getSortedSet(leaf.reader(), fields.get(f));
                    }
                } else {
                    storedFields = leaf.reader().storedFields();
                }
            }
            int local = docs[i] - leaf.docBase;
            out[i] = switch (source) {
                case DOC_VALUES -> fromDocValues(docValues, local);
                case STORED -> fromStored(storedFields, local, fields);
                case SOURCE -> fromSource(storedFields, local, fields);
            };
        }
        return out;
    }

    private static String fromDocValues(SortedSetDocValues[] docValues, int doc) throws IOException {
        StringBuilder text = new StringBuilder();
        for (SortedSetDocValues dv : docValues) {
            if (dv.advanceExact(doc)) {
                for (int k = 0; k < dv.docValueCount(); k++) {
                    append(text, dv.lookupOrd(dv.nextOrd()).utf8ToString());
                }
            }
        }
        return text.toString();
    }

    private static String fromSource(StoredFields sf, int doc, List<String> fields) throws IOException {
        byte[][] holder = new byte[1][];
        sf.document(doc, new StoredFieldVisitor() {
            @Override
            public Status needsField(FieldInfo fieldInfo) {
                if (holder[0] != null) {
                    return Status.STOP;
                }
                return "_source".equals(fieldInfo.name) ? Status.YES : Status.NO;
            }

            @Override
            public void binaryField(FieldInfo fieldInfo, byte[] value) {
                holder[0] = value;
            }
        });
        if (holder[0] == null) {
            throw new IllegalArgumentException("document has no _source: the index stores none; map the fields with store: true "
                + "and use \"text_source\": \"stored\"");
        }
        Map<String, Object> source = XContentHelper.convertToMap(new BytesArray(holder[0]), false).v2();
        StringBuilder text = new StringBuilder();
        for (String f : fields) {
            append(text, XContentMapValues.extractValue(f, source));
        }
        return text.toString();
    }

    private static String fromStored(StoredFields sf, int doc, List<String> fields) throws IOException {
        Map<String, List<String>> values = new HashMap<>();
        sf.document(doc, new StoredFieldVisitor() {
            @Override
            public Status needsField(FieldInfo fieldInfo) {
                return fields.contains(fieldInfo.name) ? Status.YES : Status.NO;
            }

            @Override
            public void stringField(FieldInfo fieldInfo, String value) {
                values.computeIfAbsent(fieldInfo.name, k -> new ArrayList<>()).add(value);
            }
        });
        StringBuilder text = new StringBuilder();
        for (String f : fields) {
            append(text, values.get(f));
        }
        return text.toString();
    }

    private static void append(StringBuilder text, Object value) {
        if (value == null) {
            return;
        }
        if (value instanceof List<?> list) {
            for (Object v : list) {
                append(text, v);
            }
            return;
        }
        if (text.length() > 0) {
            text.append(' ');
        }
        text.append(value);
    }
}
