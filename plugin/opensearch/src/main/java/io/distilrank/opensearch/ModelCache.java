package io.distilrank.opensearch;

import org.opensearch.OpenSearchStatusException;
import org.opensearch.core.action.ActionListener;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.transport.client.Client;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The models loaded on this node, keyed by model id (at most {@code maxModels}, least recently loaded evicted
 * first). A model is loaded once per node (concurrent requests wait for the same load), verified by SHA-256
 * against its upload record, and kept until evicted or deleted; a search for an alias that moved resolves to
 * the new model id, which loads on first use (the cold start) unless a warm ({@link NodesModelAction}) loaded it.
 *
 * <p>Protected models: each warm names the models behind the other live aliases ({@link #protect}); a load never
 * evicts one of them. When every other loaded model is protected the cache holds more than {@code maxModels} until
 * an alias moves off one (the next warm's protected set no longer names it) rather than cold-start a live alias.
 * Thread-safe.
 */
public final class ModelCache {
    static final int MAX_WINDOWS = 64;
    private final int maxModels;
    private final int threads;
    private final Map<String, StudentModel> models = new LinkedHashMap<>();
    private java.util.Set<String> protectedIds = java.util.Set.of();
    private final Map<String, List<ActionListener<StudentModel>>> loading = new LinkedHashMap<>();
    /** The last rescored windows of this node (for {@code explain}, which runs in the fetch phase), least recently used evicted. */
    private final Map<String, Blend.Window> windows = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, Blend.Window> eldest) {
            return size() > MAX_WINDOWS;
        }
    };

    public ModelCache(int maxModels, int threads) {
        this.maxModels = maxModels;
        this.threads = threads;
    }

    /** Keeps a rescored window under {@code key} (see {@link DistilrankRescorer.Context#windowKey}) for {@code explain}. */
    void rememberWindow(String key, Blend.Window window) {
        synchronized (windows) {
            windows.put(key, window);
        }
    }

    /** The window kept under {@code key}, or {@code null} (never kept, or evicted by {@link #MAX_WINDOWS} later ones). */
    Blend.Window window(String key) {
        synchronized (windows) {
            return windows.get(key);
        }
    }

    /** The loaded model with a reference taken (release it), or {@code null} when it is not loaded with that hash. */
    public synchronized StudentModel acquire(String modelId, String sha256) {
        StudentModel m = models.get(modelId);
        if (m == null || !m.sha256().equals(sha256) || !m.acquire()) {
            return null;
        }
        return m;
    }

    public synchronized boolean isLoaded(String modelId, String sha256) {
        StudentModel m = models.get(modelId);
        return m != null && m.sha256().equals(sha256);
    }

    /** Loads the model into this node's cache unless it is there; {@code listener} gets it once loaded. */
    public void ensureLoaded(Client client, String modelId, String sha256, ActionListener<StudentModel> listener) {
        ensureLoaded(client, modelId, sha256, null, listener);
    }

    /**
     * {@link #ensureLoaded(Client, String, String, ActionListener)}, adding the ids this load evicted to {@code evictedOut}
     * (when not {@code null}; filled before {@code listener} is called, and only by the call that started the load).
     */
    public void ensureLoaded(Client client, String modelId, String sha256, List<String> evictedOut, ActionListener<StudentModel> listener) {
        synchronized (this) {
            StudentModel m = models.get(modelId);
            if (m != null && m.sha256().equals(sha256)) {
                listener.onResponse(m);
                return;
            }
            List<ActionListener<StudentModel>> waiting = loading.get(modelId);
            if (waiting != null) {
                waiting.add(listener);
                return;
            }
            waiting = new ArrayList<>();
            waiting.add(listener);
            loading.put(modelId, waiting);
        }
        ActionListener<StudentModel> done = ActionListener.wrap(m -> finish(modelId, m, null, evictedOut), e -> finish(modelId, null, e, evictedOut));
        ModelStore.readRecord(client, modelId, ActionListener.wrap(record -> {
            if (record == null || !Boolean.TRUE.equals(record.get("complete"))) {
                done.onFailure(new OpenSearchStatusException("model [" + modelId + "] is not loaded on this node and its zip is not in "
                    + ModelStore.MODELS_INDEX + " (distilrank plugin register uploads it)", RestStatus.BAD_REQUEST));
                return;
            }
            if (!sha256.equals(record.get("sha256"))) {
                done.onFailure(new OpenSearchStatusException("model [" + modelId + "]: uploaded sha256 " + record.get("sha256")
                    + " differs from the requested " + sha256, RestStatus.CONFLICT));
                return;
            }
            int chunks = ((Number) record.get("total_chunks")).intValue();
            long readStart = System.nanoTime();
            ModelStore.readZip(client, modelId, chunks, ActionListener.wrap(zip -> client.threadPool().generic().execute(() -> {
                try {
                    double readMs = (System.nanoTime() - readStart) / 1e6;
                    StudentModel m = StudentModel.load(modelId, zip, sha256, threads);
                    m.readZipMillis(readMs);
                    done.onResponse(m);
                } catch (IllegalArgumentException e) {
                    done.onFailure(new OpenSearchStatusException(e.getMessage(), RestStatus.BAD_REQUEST, e));
                } catch (Exception | LinkageError e) {
                    done.onFailure(new OpenSearchStatusException("model [" + modelId + "] could not be loaded: " + e, RestStatus.INTERNAL_SERVER_ERROR));
                }
            }), done::onFailure));
        }, done::onFailure));
    }

    private void finish(String modelId, StudentModel loaded, Exception failure, List<String> evictedOut) {
        List<ActionListener<StudentModel>> waiting;
        List<StudentModel> evicted = new ArrayList<>();
        synchronized (this) {
            waiting = loading.remove(modelId);
            if (loaded != null) {
                StudentModel old = models.remove(modelId);
                if (old != null) {
                    evicted.add(old);
                }
                models.put(modelId, loaded);
                java.util.Iterator<String> oldestFirst = new ArrayList<>(models.keySet()).iterator();
                while (models.size() > maxModels && oldestFirst.hasNext()) {
                    String id = oldestFirst.next();
                    if (!id.equals(modelId) && !protectedIds.contains(id)) {
                        StudentModel gone = models.remove(id);
                        evicted.add(gone);
                        if (evictedOut != null) {
                            evictedOut.add(id);
                        }
                    }
                }
            }
        }
        evicted.forEach(StudentModel::release);
        for (ActionListener<StudentModel> l : waiting == null ? List.<ActionListener<StudentModel>>of() : waiting) {
            if (loaded != null) {
                l.onResponse(loaded);
            } else {
                l.onFailure(failure);
            }
        }
    }

    /** Drops {@code modelId} from this node (its session closes once no search uses it); {@code true} when it was loaded. */
    public boolean evict(String modelId) {
        StudentModel m;
        synchronized (this) {
            m = models.remove(modelId);
            if (protectedIds.contains(modelId)) {
                java.util.Set<String> rest = new java.util.LinkedHashSet<>(protectedIds);
                rest.remove(modelId);
                protectedIds = java.util.Set.copyOf(rest);
            }
        }
        if (m != null) {
            m.release();
        }
        return m != null;
    }

    /** Replaces the protected set: the models behind live aliases other than the one a warm moves (never evicted by a load). */
    public synchronized void protect(java.util.Collection<String> modelIds) {
        protectedIds = java.util.Set.copyOf(modelIds);
    }

    /** The protected model ids (sorted). */
    public synchronized List<String> protectedModels() {
        return new ArrayList<>(new java.util.TreeSet<>(protectedIds));
    }

    /** The loaded model ids, least recently loaded first. */
    public synchronized List<String> loadedIds() {
        return new ArrayList<>(models.keySet());
    }

    /** What is loaded, for {@code GET _plugins/distilrank/_stats}. */
    public synchronized List<Map<String, Object>> stats() {
        List<Map<String, Object>> out = new ArrayList<>();
        for (StudentModel m : models.values()) {
            Map<String, Object> s = new LinkedHashMap<>();
            s.put("model_id", m.modelId());
            s.put("sha256", m.sha256());
            s.put("zip_bytes", m.zipBytes());
            s.put("onnx_bytes", m.onnxBytes());
            s.put("vocab_size", m.vocabSize());
            s.put("load_ms", m.loadMillis());
            s.put("load_steps_ms", new java.util.TreeMap<>(m.loadSteps()));
            s.put("loaded_at_ms", m.loadedAtMillis());
            s.put("rescores", m.uses());
            s.put("stages", m.times().toMap());
            out.add(s);
        }
        return out;
    }

    public int maxModels() {
        return maxModels;
    }

    public int threads() {
        return threads;
    }
}
