package io.distilrank.opensearch;

import org.opensearch.action.ActionType;
import org.opensearch.action.FailedNodeException;
import org.opensearch.action.support.ActionFilters;
import org.opensearch.action.support.PlainActionFuture;
import org.opensearch.action.support.nodes.BaseNodeResponse;
import org.opensearch.action.support.nodes.BaseNodesRequest;
import org.opensearch.action.support.nodes.BaseNodesResponse;
import org.opensearch.action.support.nodes.TransportNodesAction;
import org.opensearch.cluster.ClusterName;
import org.opensearch.cluster.node.DiscoveryNode;
import org.opensearch.cluster.service.ClusterService;
import org.opensearch.common.inject.Inject;
import org.opensearch.common.unit.TimeValue;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.core.xcontent.ToXContentObject;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.threadpool.ThreadPool;
import org.opensearch.transport.TransportRequest;
import org.opensearch.transport.TransportService;
import org.opensearch.transport.client.Client;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryUsage;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

/**
 * The rescorer's per-node operations, broadcast to the nodes a request names (like OpenSearch's node stats):
 * <ul>
 *   <li>{@code stats} ({@link #STATS}, {@code cluster:monitor/distilrank/stats}): what each node's {@link ModelCache} holds;</li>
 *   <li>{@code warm} ({@link #ADMIN}, {@code cluster:admin/distilrank/nodes}): each node loads the model (unless it holds
 *       that hash) and scores one dummy window, keeping the {@code protect}ed models (those behind other live aliases)
 *       out of eviction;</li>
 *   <li>{@code evict} ({@link #ADMIN}): each node drops the model from its cache (a deleted model leaves every node).</li>
 * </ul>
 * The answer has one entry per node that answered ({@code nodes}, keyed by node id, each with the node's {@code name})
 * and the nodes that did not ({@code _nodes.failures}).
 */
public final class NodesModelAction {
    public static final ActionType<Response> STATS = new ActionType<>("cluster:monitor/distilrank/stats", Response::new);
    public static final ActionType<Response> ADMIN = new ActionType<>("cluster:admin/distilrank/nodes", Response::new);
    /** How long one node may take to load and warm a model before its answer counts as a failure. */
    static final TimeValue WARM_TIMEOUT = TimeValue.timeValueMinutes(2);

    private NodesModelAction() {}

    /**
     * What every node is asked: {@code op} = {@code stats | warm | evict}; the model fields are unused by {@code stats},
     * {@code protect} (the models behind other live aliases) only by {@code warm}.
     */
    record Operation(String op, String modelId, String sha256, int windowSize, List<String> protect) {
        Operation {
            protect = protect == null ? List.of() : List.copyOf(protect);
        }

        static Operation readFrom(StreamInput in) throws IOException {
            return new Operation(in.readString(), in.readOptionalString(), in.readOptionalString(), in.readVInt(), in.readStringList());
        }

        void writeTo(StreamOutput out) throws IOException {
            out.writeString(op);
            out.writeOptionalString(modelId);
            out.writeOptionalString(sha256);
            out.writeVInt(windowSize);
            out.writeStringCollection(protect);
        }
    }

    /** The {@link Operation} and the nodes it goes to (OpenSearch's node filters). */
    public static final class Request extends BaseNodesRequest<Request> {
        final Operation operation;

        public Request(String op, String modelId, String sha256, int windowSize, List<String> protect, String... nodeIds) {
            super(nodeIds);
            operation = new Operation(op, modelId, sha256, windowSize, protect);
        }

        public Request(StreamInput in) throws IOException {
            super(in);
            operation = Operation.readFrom(in);
        }

        @Override
        public void writeTo(StreamOutput out) throws IOException {
            super.writeTo(out);
            operation.writeTo(out);
        }
    }

    /** What one node is asked: the {@link Operation} of {@link Request}, without the node selection. */
    public static final class NodeRequest extends TransportRequest {
        final Operation operation;

        NodeRequest(Request r) {
            operation = r.operation;
        }

        public NodeRequest(StreamInput in) throws IOException {
            super(in);
            operation = Operation.readFrom(in);
        }

        @Override
        public void writeTo(StreamOutput out) throws IOException {
            super.writeTo(out);
            operation.writeTo(out);
        }
    }

    /** One node's answer: a JSON object. */
    public static final class NodeResponse extends BaseNodeResponse {
        final Map<String, Object> body;

        NodeResponse(DiscoveryNode node, Map<String, Object> body) {
            super(node);
            this.body = body;
        }

        public NodeResponse(StreamInput in) throws IOException {
            super(in);
            body = in.readMap();
        }

        @Override
        public void writeTo(StreamOutput out) throws IOException {
            super.writeTo(out);
            out.writeMap(body);
        }
    }

    /** Every node's answer, as {@code {"_nodes": {total, successful, failed, failures}, "cluster_name", "nodes": {id: {...}}}}. */
    public static final class Response extends BaseNodesResponse<NodeResponse> implements ToXContentObject {
        Response(ClusterName cluster, List<NodeResponse> nodes, List<FailedNodeException> failures) {
            super(cluster, nodes, failures);
        }

        public Response(StreamInput in) throws IOException {
            super(in);
        }

        @Override
        protected List<NodeResponse> readNodesFrom(StreamInput in) throws IOException {
            return in.readList(NodeResponse::new);
        }

        @Override
        protected void writeNodesTo(StreamOutput out, List<NodeResponse> nodes) throws IOException {
            out.writeList(nodes);
        }

        /** {@code {total, successful, failed[, failures: [{node_id, reason}]]}}: who answered (failures only when some did not). */
        Map<String, Object> nodesSummary() {
            Map<String, Object> s = new LinkedHashMap<>();
            s.put("total", getNodes().size() + failures().size());
            s.put("successful", getNodes().size());
            s.put("failed", failures().size());
            if (!failures().isEmpty()) {
                List<Map<String, Object>> why = new ArrayList<>();
                for (FailedNodeException f : failures()) {
                    why.add(Map.of("node_id", f.nodeId(), "reason", String.valueOf(rootMessage(f))));
                }
                s.put("failures", why);
            }
            return s;
        }

        /** The per-node part of the answer, without the outer object (the warm answer adds its own fields around it). */
        void nodesToXContent(XContentBuilder b) throws IOException {
            b.field("_nodes", nodesSummary());
            b.field("cluster_name", getClusterName().value());
            b.startObject("nodes");
            for (NodeResponse n : getNodes()) {
                b.startObject(n.getNode().getId()).field("name", n.getNode().getName()).mapContents(n.body).endObject();
            }
            b.endObject();
        }

        @Override
        public XContentBuilder toXContent(XContentBuilder b, Params params) throws IOException {
            b.startObject();
            nodesToXContent(b);
            return b.endObject();
        }
    }

    static String rootMessage(Throwable e) {
        Throwable c = org.opensearch.ExceptionsHelper.unwrapCause(e);
        while (c.getCause() != null && c.getCause() != c) {
            c = c.getCause();
        }
        return c.getMessage() == null ? c.toString() : c.getMessage();
    }

    /** The shared node-side work of both action names; runs on the generic pool (a warm waits for the model's load). */
    abstract static class Base extends TransportNodesAction<Request, Response, NodeRequest, NodeResponse> {
        private final ModelCache cache;
        private final Client client;
        private final java.util.Set<String> ops;

        Base(String name, java.util.Set<String> ops, ThreadPool threadPool, ClusterService clusterService, TransportService transportService,
             ActionFilters filters, ModelCache cache, Client client) {
            super(name, threadPool, clusterService, transportService, filters, Request::new, NodeRequest::new, ThreadPool.Names.GENERIC,
                NodeResponse.class);
            this.ops = ops;
            this.cache = cache;
            this.client = client;
        }

        /** Refuses an operation this action name does not grant (a monitor permission cannot warm or evict). */
        @Override
        protected void doExecute(org.opensearch.tasks.Task task, Request request, org.opensearch.core.action.ActionListener<Response> listener) {
            if (!ops.contains(request.operation.op())) {
                listener.onFailure(ModelStore.badRequest("[" + actionName + "] does not run [" + request.operation.op() + "]; it runs " + ops));
                return;
            }
            super.doExecute(task, request, listener);
        }

        @Override
        protected Response newResponse(Request request, List<NodeResponse> responses, List<FailedNodeException> failures) {
            return new Response(clusterService.getClusterName(), responses, failures);
        }

        @Override
        protected NodeRequest newNodeRequest(Request request) {
            return new NodeRequest(request);
        }

        @Override
        protected NodeResponse newNodeResponse(StreamInput in) throws IOException {
            return new NodeResponse(in);
        }

        @Override
        protected NodeResponse nodeOperation(NodeRequest request) {
            DiscoveryNode local = clusterService.localNode();
            Operation o = request.operation;
            return switch (o.op()) {
                case "stats" -> new NodeResponse(local, stats());
                case "evict" -> new NodeResponse(local, Map.of("model_id", o.modelId(), "evicted", cache.evict(o.modelId())));
                case "warm" -> new NodeResponse(local, warm(o));
                default -> throw new IllegalArgumentException("unknown distilrank node operation [" + o.op() + "]");
            };
        }

        private Map<String, Object> stats() {
            MemoryUsage heap = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage();
            Map<String, Object> s = new LinkedHashMap<>();
            s.put("models", cache.stats());
            s.put("max_models", cache.maxModels());
            s.put("protected", new ArrayList<>(cache.protectedModels()));
            s.put("intra_op_threads", cache.threads());
            s.put("heap_used_bytes", heap.getUsed());
            return s;
        }

        private Map<String, Object> warm(Operation request) {
            cache.protect(request.protect());
            boolean already = cache.isLoaded(request.modelId(), request.sha256());
            long t0 = System.nanoTime();
            PlainActionFuture<StudentModel> loaded = PlainActionFuture.newFuture();
            List<String> evicted = new ArrayList<>();
            cache.ensureLoaded(client, request.modelId(), request.sha256(), evicted, loaded);
            StudentModel m;
            try {
                m = loaded.get(WARM_TIMEOUT.millis(), TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.ExecutionException e) {
                throw new IllegalStateException("loading model [" + request.modelId() + "] failed: " + rootMessage(e), e);
            } catch (java.util.concurrent.TimeoutException e) {
                throw new IllegalStateException("loading model [" + request.modelId() + "] took longer than " + WARM_TIMEOUT, e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while loading model [" + request.modelId() + "]", e);
            }
            double loadMs = (System.nanoTime() - t0) / 1e6;
            if (!m.acquire()) {
                throw new IllegalStateException("model [" + request.modelId() + "] was evicted while warming; warm it again");
            }
            double warmMs;
            try {
                warmMs = m.warmWindow(request.windowSize());
            } catch (ai.onnxruntime.OrtException e) {
                throw new IllegalStateException("model [" + request.modelId() + "] failed its warm-up window: " + e.getMessage(), e);
            } finally {
                m.release();
            }
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("already_loaded", already);
            out.put("load_ms", loadMs);
            out.put("warm_window_ms", warmMs);
            out.put("load_steps_ms", new TreeMap<>(m.loadSteps()));
            out.put("evicted", evicted);
            out.put("models_loaded", cache.loadedIds());
            return out;
        }
    }

    /** {@code cluster:monitor/distilrank/stats}. */
    public static final class StatsTransport extends Base {
        @Inject
        public StatsTransport(ThreadPool threadPool, ClusterService clusterService, TransportService transportService, ActionFilters filters,
                              ModelCache cache, Client client) {
            super(STATS.name(), java.util.Set.of("stats"), threadPool, clusterService, transportService, filters, cache, client);
        }
    }

    /** {@code cluster:admin/distilrank/nodes}. */
    public static final class AdminTransport extends Base {
        @Inject
        public AdminTransport(ThreadPool threadPool, ClusterService clusterService, TransportService transportService, ActionFilters filters,
                              ModelCache cache, Client client) {
            super(ADMIN.name(), java.util.Set.of("warm", "evict"), threadPool, clusterService, transportService, filters, cache, client);
        }
    }
}
