package io.distilrank.opensearch;

import org.opensearch.common.xcontent.XContentHelper;
import org.opensearch.core.action.ActionListener;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.rest.BaseRestHandler;
import org.opensearch.rest.BytesRestResponse;
import org.opensearch.rest.RestRequest;
import org.opensearch.rest.action.RestToXContentListener;
import org.opensearch.transport.client.node.NodeClient;

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
 *   <li>{@code POST _plugins/distilrank/models/{model_id}/_warm}: load the model on every data node and run one dummy
 *       window on each ({@link Warm});</li>
 *   <li>{@code GET _plugins/distilrank/_stats}: per node, the models its cache holds and its JVM heap ({@link Stats}).</li>
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
     * {@code POST _plugins/distilrank/models/{model_id}/_warm?window_size=100&alias=staging}: every data node loads the
     * model into its cache (unless it holds that hash) and scores one dummy window of {@code window_size} documents, so
     * the next search that names it pays neither the load nor ONNX Runtime's first run at that size, whichever node
     * holds the shards. {@code alias} (optional) is the alias about to move to the model: the models behind every
     * other alias in {@code distilrank-registry} are protected from eviction on every node while it loads. Answers
     * {@code model_id}, {@code sha256}, {@code window_size}, {@code protected} and, per node ({@code nodes}, keyed by
     * node id), {@code already_loaded}, {@code load_ms}, {@code warm_window_ms}, {@code load_steps_ms},
     * {@code evicted}, {@code models_loaded}; nodes that failed are in {@code _nodes.failures}.
     */
    static final class Warm extends BaseRestHandler {
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
            String alias = request.param("alias");
            int window = request.paramAsInt("window_size", 100);
            if (window < 1 || window > 10_000) {
                throw new IllegalArgumentException("window_size must be between 1 and 10000, got " + window);
            }
            return channel -> ModelStore.readRecord(client, modelId, ActionListener.wrap(record -> {
                if (record == null || !Boolean.TRUE.equals(record.get("complete"))) {
                    channel.sendResponse(new BytesRestResponse(RestStatus.NOT_FOUND, "application/json", "{\"error\":\"model [" + modelId
                        + "] has no complete upload in " + ModelStore.MODELS_INDEX + " (distilrank plugin register uploads it)\"}"));
                    return;
                }
                String sha = String.valueOf(record.get("sha256"));
                ModelStore.liveAliasModels(client, alias, ActionListener.wrap(protect -> {
                    NodesModelAction.Request warm = new NodesModelAction.Request("warm", modelId, sha, window, protect, "data:true");
                    client.execute(NodesModelAction.ADMIN, warm, ActionListener.wrap(resp -> {
                        XContentBuilder b = channel.newBuilder();
                        b.startObject().field("model_id", modelId).field("sha256", sha).field("window_size", window)
                            .field("alias", alias).field("protected", protect);
                        resp.nodesToXContent(b);
                        b.endObject();
                        channel.sendResponse(new BytesRestResponse(RestStatus.OK, b));
                    }, e -> fail(channel, e)));
                }, e -> fail(channel, e)));
            }, e -> fail(channel, e)));
        }

        private static void fail(org.opensearch.rest.RestChannel channel, Exception e) {
            try {
                channel.sendResponse(new BytesRestResponse(channel, e));
            } catch (java.io.IOException inner) {
                e.addSuppressed(inner);
            }
        }
    }

    /**
     * {@code GET _plugins/distilrank/_stats?nodes=_all}: per node ({@code nodes}, keyed by node id, like
     * {@code _nodes/stats}) the models its cache holds (load time and steps, sizes, rescores, stage times), the
     * protected ids, the cache's capacity and the JVM heap; {@code nodes} takes OpenSearch's node filters
     * ({@code _local}, {@code data:true}, names, ids).
     */
    static final class Stats extends BaseRestHandler {
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
            String[] nodes = request.paramAsStringArray("nodes", new String[] {"_all"});
            NodesModelAction.Request stats = new NodesModelAction.Request("stats", null, null, 0, List.of(), nodes);
            return channel -> client.execute(NodesModelAction.STATS, stats, new RestToXContentListener<>(channel));
        }
    }
}
