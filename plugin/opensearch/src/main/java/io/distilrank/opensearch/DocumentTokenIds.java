package io.distilrank.opensearch;

import org.apache.lucene.index.LeafReaderContext;
import org.apache.lucene.index.ReaderUtil;
import org.apache.lucene.search.IndexSearcher;
import org.opensearch.index.fielddata.IndexFieldData;
import org.opensearch.index.fielddata.SortedBinaryDocValues;

import java.io.IOException;
import java.util.Arrays;
import java.util.List;

/**
 * Reads the index-time token ids ({@link TokenIds}) of a rescore window from a {@code binary} field's doc values
 * (columnar: no stored-fields block is decompressed). Documents are visited in doc-id order. A document whose value is
 * missing, was written for another tokenizer, or is malformed gets {@code null} and is counted by reason, so the
 * caller reads and tokenizes its text instead.
 */
final class DocumentTokenIds {
    private DocumentTokenIds() {}

    /**
     * Fills {@code ids[i]} for {@code docs[i]} (top-level doc ids) from {@code data}; returns the misses per
     * {@link TokenIds.Miss} ordinal. The first value of a multi-valued document is used.
     */
    static int[] read(IndexSearcher searcher, int[] docs, IndexFieldData<?> data, byte[] fingerprint, int[][] ids) throws IOException {
        List<LeafReaderContext> leaves = searcher.getIndexReader().leaves();
        Integer[] order = new Integer[docs.length];
        for (int i = 0; i < docs.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Integer.compare(docs[a], docs[b]));
        int[] misses = new int[TokenIds.Miss.values().length];
        int leafIndex = -1;
        LeafReaderContext leaf = null;
        SortedBinaryDocValues values = null;
        for (Integer i : order) {
            int li = ReaderUtil.subIndex(docs[i], leaves);
            if (li != leafIndex) {
                leafIndex = li;
                leaf = leaves.get(li);
                values = data.load(leaf).getBytesValues();
            }
            Object decoded = values.advanceExact(docs[i] - leaf.docBase) && values.docValueCount() > 0
                ? TokenIds.decode(values.nextValue(), fingerprint) : TokenIds.Miss.MISSING;
            if (decoded instanceof int[] a) {
                ids[i] = a;
            } else {
                misses[((TokenIds.Miss) decoded).ordinal()]++;
            }
        }
        return misses;
    }
}
