package io.distilrank.opensearch;

import org.opensearch.common.xcontent.XContentHelper;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.rest.BaseRestHandler;
import org.opensearch.rest.BytesRestResponse;
import org.opensearch.rest.RestRequest;
import org.opensearch.rest.action.RestToXContentListener;
import org.opensearch.transport.client.node.NodeClient;

import java.lang.management.ManagementFactory;
import java.lang.management.MemoryUsage;
import java.util.Base64;
import java.util.List;
import java.util.Map;

/**
 * REST endpoints of the plugin:
 * <ul>
 *   <li>{@code POST _plugins/distilrank/models/{model_id}/_upload_chunk/{chunk}} with
 *       {@code {"sha256", "size", "total_chunks", "data": base64}} and optionally {@code "blend": {"query_weight",
 *       "model_weight", "normalization"}} (what {@code distilrank plugin register} sends; the last chunk's {@code blend}
 *       is stored in the upload record);</li>
 *   <li>{@code GET _plugins/distilrank/models/{model_id}}: the upload record; {@code DELETE} the same path removes it;</li>
 *   <li>{@code POST _plugins/distilrank/models/{model_id}/_warm}: load the model on the node that answers and run one
 *       dummy window ({@link Warm});</li>
 *   <li>{@code GET _plugins/distilrank/_stats}: the models loaded on the node that answers, and its JVM heap.</li>
 * </ul>
 */
final class RestHandlers {
    private RestHandlers() {}

    static final class Models extends BaseRestHandler {
        @Override
        public String getName() {
            return "distilrank_models";
        }

        @Override
        public List<Route> routes() {
            return List.of(new Route(RestRequest.Method.POST, "/_plugins/distilrank/models/{model_id}/_upload_chunk/{chunk}"),
                new Route(RestRequest.Method.GET, "/_plugins/distilrank/models/{model_id}"),
                new Route(RestRequest.Method.DELETE, "/_plugins/distilrank/models/{model_id}"));
        }

        @Override
        protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
            String modelId = request.param("model_id");
            ModelAdminAction.Request req;
            if (request.method() == RestRequest.Method.POST) {
                int chunk = Integer.parseInt(request.param("chunk"));
                if (!request.hasContent()) {
                    throw new IllegalArgumentException("upload_chunk needs a JSON body {sha256, size, total_chunks, data}");
                }
                Map<String, Object> body = XContentHelper.convertToMap(request.requiredContent(), false, request.getMediaType()).v2();
                Object sha = body.get("sha256");
                Object size = body.get("size");
                Object total = body.get("total_chunks");
                Object data = body.get("data");
                if (sha == null || size == null || total == null || data == null) {
                    throw new IllegalArgumentException("upload_chunk body needs sha256, size, total_chunks and data (base64)");
                }
                Object blend = body.get("blend");
                if (blend != null && !(blend instanceof Map)) {
                    throw new IllegalArgumentException("upload_chunk: blend must be an object {query_weight, model_weight, normalization}");
                }
                @SuppressWarnings("unchecked")
                Map<String, Object> blendMap = (Map<String, Object>) blend;
                req = new ModelAdminAction.Request("upload", modelId, sha.toString(), chunk, ((Number) total).intValue(),
                    ((Number) size).longValue(), Base64.getDecoder().decode(data.toString()), blendMap);
            } else {
                req = new ModelAdminAction.Request(request.method() == RestRequest.Method.GET ? "get" : "delete", modelId, null, 0, 0, 0,
                    new byte[0]);
            }
            return channel -> client.execute(ModelAdminAction.INSTANCE, req, new RestToXContentListener<>(channel));
        }
    }

    /**
     * {@code POST _plugins/distilrank/models/{model_id}/_warm?window_size=100}: load the model into this node's cache
     * (unless it is there) and score one dummy window of {@code window_size} documents, so the next search that names it
     * pays neither the load nor ONNX Runtime's first run at that size. Answers {@code model_id}, {@code sha256},
     * {@code already_loaded}, {@code load_ms} (this call's wait for the load), {@code warm_window_ms} and the node.
     * The node that answers is the one warmed.
     */
    static final class Warm extends BaseRestHandler {
        private final ModelCache cache;

        Warm(ModelCache cache) {
            this.cache = cache;
        }

        @Override
        public String getName() {
            return "distilrank_warm";
        }

        @Override
        public List<Route> routes() {
            return List.of(new Route(RestRequest.Method.POST, "/_plugins/distilrank/models/{model_id}/_warm"));
        }

        @Override
        protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
            String modelId = request.param("model_id");
            int window = request.paramAsInt("window_size", 100);
            if (window < 1 || window > 10_000) {
                throw new IllegalArgumentException("window_size must be between 1 and 10000, got " + window);
            }
            return channel -> ModelStore.readRecord(client, modelId, org.opensearch.core.action.ActionListener.wrap(record -> {
                if (record == null || !Boolean.TRUE.equals(record.get("complete"))) {
                    channel.sendResponse(new BytesRestResponse(RestStatus.NOT_FOUND, "application/json", "{\"error\":\"model [" + modelId
                        + "] has no complete upload in " + ModelStore.MODELS_INDEX + " (distilrank plugin register uploads it)\"}"));
                    return;
                }
                String sha = String.valueOf(record.get("sha256"));
                boolean already = cache.isLoaded(modelId, sha);
                long t0 = System.nanoTime();
                cache.ensureLoaded(client, modelId, sha, org.opensearch.core.action.ActionListener.wrap(m -> client.threadPool().generic()
                    .execute(() -> respondWarm(channel, client, m, sha, already, (System.nanoTime() - t0) / 1e6, window)),
                    e -> fail(channel, e)));
            }, e -> fail(channel, e)));
        }

        private static void fail(org.opensearch.rest.RestChannel channel, Exception e) {
            try {
                channel.sendResponse(new BytesRestResponse(channel, e));
            } catch (java.io.IOException inner) {
                e.addSuppressed(inner);
            }
        }

        private void respondWarm(org.opensearch.rest.RestChannel channel, NodeClient client, StudentModel m, String sha, boolean already,
                                 double loadMs, int window) {
            try {
                if (!m.acquire()) {
                    throw new IllegalStateException("model [" + m.modelId() + "] was evicted while warming; warm it again");
                }
                double warmMs;
                try {
                    warmMs = m.warmWindow(window);
                } finally {
                    m.release();
                }
                XContentBuilder b = channel.newBuilder();
                b.startObject().field("model_id", m.modelId()).field("sha256", sha).field("already_loaded", already)
                    .field("load_ms", loadMs).field("warm_window_ms", warmMs).field("window_size", window)
                    .field("node", client.getLocalNodeId()).field("load_steps_ms", new java.util.TreeMap<>(m.loadSteps())).endObject();
                channel.sendResponse(new BytesRestResponse(RestStatus.OK, b));
            } catch (Exception e) {
                fail(channel, e);
            }
        }
    }

    static final class Stats extends BaseRestHandler {
        private final ModelCache cache;

        Stats(ModelCache cache) {
            this.cache = cache;
        }

        @Override
        public String getName() {
            return "distilrank_stats";
        }

        @Override
        public List<Route> routes() {
            return List.of(new Route(RestRequest.Method.GET, "/_plugins/distilrank/_stats"));
        }

        @Override
        protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
            return channel -> {
                MemoryUsage heap = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage();
                XContentBuilder b = channel.newBuilder();
                b.startObject();
                b.field("models", cache.stats());
                b.field("max_models", cache.maxModels());
                b.field("intra_op_threads", cache.threads());
                b.field("heap_used_bytes", heap.getUsed());
                b.endObject();
                channel.sendResponse(new BytesRestResponse(RestStatus.OK, b));
            };
        }
    }
}
