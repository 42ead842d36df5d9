package io.distilrank.opensearch;

import org.opensearch.OpenSearchStatusException;
import org.opensearch.ResourceAlreadyExistsException;
import org.opensearch.action.ActionRequest;
import org.opensearch.action.ActionRequestValidationException;
import org.opensearch.action.ActionType;
import org.opensearch.action.admin.indices.create.CreateIndexRequest;
import org.opensearch.action.delete.DeleteRequest;
import org.opensearch.action.index.IndexRequest;
import org.opensearch.action.support.ActionFilters;
import org.opensearch.action.support.HandledTransportAction;
import org.opensearch.action.support.WriteRequest;
import org.opensearch.common.inject.Inject;
import org.opensearch.common.settings.Settings;
import org.opensearch.core.action.ActionListener;
import org.opensearch.core.action.ActionResponse;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.core.xcontent.ToXContentObject;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.tasks.Task;
import org.opensearch.transport.TransportService;
import org.opensearch.transport.client.Client;

import java.io.IOException;
import java.time.Instant;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * {@code cluster:admin/distilrank/model}: upload a model zip chunk by chunk, read its upload record, delete it (and
 * evict it from every node's cache).
 * A transport action (not a bare REST handler) so that the security plugin authorizes callers by this action name;
 * the action itself writes the plugin's system index {@code .distilrank-models} with the node's stashed context.
 * The last chunk completes the upload only if the reassembled zip's SHA-256 and size equal the declared ones; its
 * optional {@code blend} settings ({@link BlendParams#fromStored}) are stored in the upload record, and the rescorer
 * uses them for searches that do not set them in the body.
 */
public final class ModelAdminAction extends ActionType<ModelAdminAction.Response> {
    public static final String NAME = "cluster:admin/distilrank/model";
    public static final ModelAdminAction INSTANCE = new ModelAdminAction();

    private ModelAdminAction() {
        super(NAME, Response::new);
    }

    /** One operation: {@code upload} (a chunk), {@code get} or {@code delete}. */
    public static final class Request extends ActionRequest {
        final String op;
        final String modelId;
        final String sha256;
        final int chunk;
        final int totalChunks;
        final long size;
        final byte[] data;
        final Map<String, Object> blend;

        public Request(String op, String modelId, String sha256, int chunk, int totalChunks, long size, byte[] data) {
            this(op, modelId, sha256, chunk, totalChunks, size, data, null);
        }

        /** {@code blend}: the model's blend settings, stored in the record by the last chunk ({@code null}: none). */
        public Request(String op, String modelId, String sha256, int chunk, int totalChunks, long size, byte[] data,
                       Map<String, Object> blend) {
            this.op = op;
            this.modelId = modelId;
            this.sha256 = sha256;
            this.chunk = chunk;
            this.totalChunks = totalChunks;
            this.size = size;
            this.data = data;
            this.blend = blend;
        }

        public Request(StreamInput in) throws IOException {
            super(in);
            op = in.readString();
            modelId = in.readString();
            sha256 = in.readOptionalString();
            chunk = in.readVInt();
            totalChunks = in.readVInt();
            size = in.readVLong();
            data = in.readByteArray();
            blend = in.readBoolean() ? in.readMap() : null;
        }

        @Override
        public void writeTo(StreamOutput out) throws IOException {
            super.writeTo(out);
            out.writeString(op);
            out.writeString(modelId);
            out.writeOptionalString(sha256);
            out.writeVInt(chunk);
            out.writeVInt(totalChunks);
            out.writeVLong(size);
            out.writeByteArray(data);
            out.writeBoolean(blend != null);
            if (blend != null) {
                out.writeMap(blend);
            }
        }

        @Override
        public ActionRequestValidationException validate() {
            ActionRequestValidationException e = null;
            if (modelId == null || modelId.isBlank() || modelId.contains("#")) {
                e = new ActionRequestValidationException();
                e.addValidationError("model_id is required and may not contain '#'");
            }
            if ("upload".equals(op) && (sha256 == null || !sha256.matches("[0-9a-f]{64}") || totalChunks < 1 || chunk < 0
                || chunk >= totalChunks || size < 1)) {
                e = e == null ? new ActionRequestValidationException() : e;
                e.addValidationError("upload needs sha256 (64 lowercase hex), total_chunks >= 1, 0 <= chunk < total_chunks and size >= 1");
            }
            try {
                BlendParams.fromStored(blend);
            } catch (IllegalArgumentException bad) {
                e = e == null ? new ActionRequestValidationException() : e;
                e.addValidationError("blend: " + bad.getMessage());
            }
            return e;
        }
    }

    /** A JSON object answer. */
    public static final class Response extends ActionResponse implements ToXContentObject {
        final Map<String, Object> body;

        public Response(Map<String, Object> body) {
            this.body = body;
        }

        public Response(StreamInput in) throws IOException {
            body = in.readMap();
        }

        @Override
        public void writeTo(StreamOutput out) throws IOException {
            out.writeMap(body);
        }

        @Override
        public XContentBuilder toXContent(XContentBuilder builder, Params params) throws IOException {
            return builder.map(body);
        }
    }

    /** Runs on the node that received the request. */
    public static final class Transport extends HandledTransportAction<Request, Response> {
        private final Client client;
        private final ModelCache cache;

        @Inject
        public Transport(TransportService transportService, ActionFilters filters, Client client, ModelCache cache) {
            super(NAME, transportService, filters, Request::new);
            this.client = client;
            this.cache = cache;
        }

        @Override
        protected void doExecute(Task task, Request request, ActionListener<Response> listener) {
            switch (request.op) {
                case "get" -> ModelStore.readRecord(client, request.modelId, ActionListener.wrap(r -> {
                    if (r == null) {
                        listener.onFailure(new OpenSearchStatusException("no model [" + request.modelId + "] uploaded to the distilrank rescorer",
                            RestStatus.NOT_FOUND));
                    } else {
                        Map<String, Object> body = new LinkedHashMap<>(r);
                        body.put("loaded_on_this_node", cache.isLoaded(request.modelId, String.valueOf(r.get("sha256"))));
                        listener.onResponse(new Response(body));
                    }
                }, listener::onFailure));
                case "upload" -> upload(request, listener);
                case "delete" -> delete(request, listener);
                default -> listener.onFailure(ModelStore.badRequest("unknown operation [" + request.op + "]"));
            }
        }

        private void ensureIndex(ActionListener<Void> listener) {
            CreateIndexRequest create = new CreateIndexRequest(ModelStore.MODELS_INDEX)
                .settings(Settings.builder().put("index.number_of_shards", 1).put("index.auto_expand_replicas", "0-1").put("index.hidden", true))
                .mapping("{\"dynamic\": false, \"properties\": {\"model_id\": {\"type\": \"keyword\"}, \"sha256\": {\"type\": \"keyword\"}, "
                    + "\"chunk\": {\"type\": \"integer\"}, \"total_chunks\": {\"type\": \"integer\"}, \"size\": {\"type\": \"long\"}, "
                    + "\"complete\": {\"type\": \"boolean\"}, \"uploaded_at\": {\"type\": \"date\"}, \"data\": {\"type\": \"binary\"}}}");
            ModelStore.<org.opensearch.action.admin.indices.create.CreateIndexResponse>asSystem(client, ActionListener.wrap(r -> listener.onResponse(null), e -> {
                // on a node that is not the cluster manager the exception comes back wrapped in a RemoteTransportException
                if (org.opensearch.ExceptionsHelper.unwrapCause(e) instanceof ResourceAlreadyExistsException) {
                    listener.onResponse(null);
                } else {
                    listener.onFailure(e);
                }
            }), l -> client.admin().indices().create(create, l));
        }

        private void upload(Request req, ActionListener<Response> listener) {
            ensureIndex(ActionListener.wrap(ignored -> {
                Map<String, Object> doc = new LinkedHashMap<>();
                doc.put("model_id", req.modelId);
                doc.put("chunk", req.chunk);
                doc.put("data", Base64.getEncoder().encodeToString(req.data));
                IndexRequest index = new IndexRequest(ModelStore.MODELS_INDEX).id(ModelStore.chunkId(req.modelId, req.chunk)).source(doc);
                ModelStore.<org.opensearch.action.index.IndexResponse>asSystem(client, ActionListener.wrap(r -> {
                    if (req.chunk < req.totalChunks - 1) {
                        listener.onResponse(new Response(Map.of("model_id", req.modelId, "chunk", req.chunk, "complete", false)));
                    } else {
                        complete(req, listener);
                    }
                }, listener::onFailure), l -> client.index(index, l));
            }, listener::onFailure));
        }

        private void complete(Request req, ActionListener<Response> listener) {
            ModelStore.readZip(client, req.modelId, req.totalChunks, ActionListener.wrap(zip -> {
                String actual = StudentModel.sha256(zip);
                if (!actual.equals(req.sha256) || zip.length != req.size) {
                    listener.onFailure(ModelStore.badRequest("model [" + req.modelId + "]: the uploaded chunks make " + zip.length + " bytes with sha256 "
                        + actual + ", the upload declared " + req.size + " bytes with sha256 " + req.sha256 + "; upload it again"));
                    return;
                }
                Map<String, Object> record = new LinkedHashMap<>();
                record.put("model_id", req.modelId);
                record.put("sha256", actual);
                record.put("size", zip.length);
                record.put("total_chunks", req.totalChunks);
                record.put("complete", true);
                record.put("uploaded_at", Instant.now().toString());
                if (req.blend != null) {
                    record.put("blend", req.blend);
                }
                IndexRequest index = new IndexRequest(ModelStore.MODELS_INDEX).id(req.modelId).source(record)
                    .setRefreshPolicy(WriteRequest.RefreshPolicy.IMMEDIATE);
                ModelStore.<org.opensearch.action.index.IndexResponse>asSystem(client, ActionListener.wrap(
                    r -> listener.onResponse(new Response(record)), listener::onFailure), l -> client.index(index, l));
            }, listener::onFailure));
        }

        /**
         * Deletes the upload record and chunks, then evicts the model on every node (a broadcast {@link NodesModelAction}
         * {@code evict}, after the documents are gone so that no node can load it again); the answer says which nodes
         * held it ({@code evicted_on}) and which did not answer ({@code _nodes.failures}).
         */
        private void delete(Request req, ActionListener<Response> listener) {
            ModelStore.readRecord(client, req.modelId, ActionListener.wrap(r -> {
                if (r == null) {
                    evictEverywhere(req.modelId, false, listener);
                    return;
                }
                int chunks = ((Number) r.get("total_chunks")).intValue();
                deleteDoc(req.modelId, ActionListener.wrap(x -> deleteChunks(req.modelId, chunks - 1,
                    ActionListener.wrap(y -> evictEverywhere(req.modelId, true, listener), listener::onFailure)), listener::onFailure));
            }, listener::onFailure));
        }

        private void evictEverywhere(String modelId, boolean deleted, ActionListener<Response> listener) {
            NodesModelAction.Request evict = new NodesModelAction.Request("evict", modelId, null, 0, java.util.List.of());
            ModelStore.<NodesModelAction.Response>asSystem(client, ActionListener.wrap(resp -> {
                Map<String, Object> body = new LinkedHashMap<>();
                body.put("model_id", modelId);
                body.put("deleted", deleted);
                java.util.List<String> on = new java.util.ArrayList<>();
                for (NodesModelAction.NodeResponse n : resp.getNodes()) {
                    if (Boolean.TRUE.equals(n.body.get("evicted"))) {
                        on.add(n.getNode().getName());
                    }
                }
                body.put("evicted_on", on);
                body.put("_nodes", resp.nodesSummary());
                listener.onResponse(new Response(body));
            }, listener::onFailure), l -> client.execute(NodesModelAction.ADMIN, evict, l));
        }

        private void deleteChunks(String modelId, int chunk, ActionListener<Void> listener) {
            if (chunk < 0) {
                listener.onResponse(null);
                return;
            }
            deleteDoc(ModelStore.chunkId(modelId, chunk), ActionListener.wrap(x -> deleteChunks(modelId, chunk - 1, listener), listener::onFailure));
        }

        private void deleteDoc(String id, ActionListener<Void> listener) {
            DeleteRequest del = new DeleteRequest(ModelStore.MODELS_INDEX, id).setRefreshPolicy(WriteRequest.RefreshPolicy.IMMEDIATE);
            ModelStore.<org.opensearch.action.delete.DeleteResponse>asSystem(client, ActionListener.wrap(r -> listener.onResponse(null), listener::onFailure), l -> client.delete(del, l));
        }
    }
}
