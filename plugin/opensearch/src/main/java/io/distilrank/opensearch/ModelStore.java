package io.distilrank.opensearch;

import org.opensearch.OpenSearchStatusException;
import org.opensearch.action.get.GetRequest;
import org.opensearch.action.get.GetResponse;
import org.opensearch.action.get.MultiGetItemResponse;
import org.opensearch.action.get.MultiGetRequest;
import org.opensearch.action.support.ContextPreservingActionListener;
import org.opensearch.common.util.concurrent.ThreadContext;
import org.opensearch.core.action.ActionListener;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.index.IndexNotFoundException;
import org.opensearch.transport.client.Client;

import java.io.ByteArrayOutputStream;
import java.util.Base64;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Where the rescorer finds its models, read with the node's own (stashed) thread context so that a search user
 * needs no permission on these indices:
 * <ul>
 *   <li>{@code distilrank-registry}, document {@code alias-<name>}: the alias records that
 *       {@code distilrank plugin promote/rollback} keep ({@code model_id} = the ML Commons model id);</li>
 *   <li>{@code .distilrank-models} (this plugin's system index): document {@code <model_id>} = the upload record
 *       ({@code sha256}, {@code size}, {@code total_chunks}, {@code complete}, optional {@code blend} settings) and documents
 *       {@code <model_id>#<n>} = base64 chunks of the zip, written by {@link ModelAdminAction}.</li>
 * </ul>
 */
public final class ModelStore {
    public static final String REGISTRY_INDEX = "distilrank-registry";
    public static final String MODELS_INDEX = ".distilrank-models";

    /** A model reference after alias resolution, with the {@code blend} settings of its upload record ({@code null}: none). */
    public record Resolved(String modelId, String sha256, String alias, Map<String, Object> blend) {}

    private ModelStore() {}

    static String chunkId(String modelId, int chunk) {
        return modelId + "#" + chunk;
    }

    /** Runs {@code call} with a stashed (system) context; {@code listener} is called back in the caller's context. */
    static <T> void asSystem(Client client, ActionListener<T> listener, Consumer<ActionListener<T>> call) {
        ThreadContext tc = client.threadPool().getThreadContext();
        ContextPreservingActionListener<T> restoring = new ContextPreservingActionListener<>(tc.newRestorableContext(false), listener);
        try (ThreadContext.StoredContext ignored = tc.stashContext()) {
            call.accept(restoring);
        }
    }

    static OpenSearchStatusException badRequest(String message) {
        return new OpenSearchStatusException(message, RestStatus.BAD_REQUEST);
    }

    /**
     * Resolves {@code model} (an alias name or a model id) to the uploaded model it denotes, reading its upload record
     * every time (so a re-upload that changes the stored {@code blend} settings applies to the next search). Fails with
     * a 400 naming what is missing: no such alias or model, or an alias pointing at a model never uploaded to the
     * rescorer.
     */
    public static void resolve(Client client, String model, ActionListener<Resolved> listener) {
        asSystem(client, ActionListener.<GetResponse>wrap(aliasDoc -> {
            Object target = aliasDoc.isExists() ? aliasDoc.getSourceAsMap().get("model_id") : null;
            String modelId = target == null ? model : target.toString();
            String alias = target == null ? null : model;
            readRecord(client, modelId, ActionListener.wrap(record -> {
                if (record == null || !Boolean.TRUE.equals(record.get("complete"))) {
                    String why = alias != null
                        ? "alias [" + alias + "] points at model [" + modelId + "], which has not been uploaded to the distilrank rescorer"
                        : "unknown model or alias [" + model + "]: no alias record in [" + REGISTRY_INDEX + "] and no model with that id "
                            + "uploaded to the distilrank rescorer";
                    listener.onFailure(badRequest(why + " (distilrank plugin register ZIP uploads the zip to ML Commons and to the rescorer)"));
                    return;
                }
                listener.onResponse(resolved(modelId, alias, record));
            }, listener::onFailure));
        }, e -> {
            if (e instanceof IndexNotFoundException) {
                // no registry yet: the name can only be a model id
                readRecord(client, model, ActionListener.wrap(record -> {
                    if (record == null || !Boolean.TRUE.equals(record.get("complete"))) {
                        listener.onFailure(badRequest("unknown model or alias [" + model + "]: no alias records exist and no model with "
                            + "that id was uploaded to the distilrank rescorer"));
                    } else {
                        listener.onResponse(resolved(model, null, record));
                    }
                }, listener::onFailure));
            } else {
                listener.onFailure(e);
            }
        }), l -> client.get(new GetRequest(REGISTRY_INDEX, "alias-" + model), l));
    }

    /**
     * The model ids behind every alias record in {@code distilrank-registry} except {@code movingAlias} (may be
     * {@code null}): what a warm protects from eviction. Empty when there is no registry.
     */
    static void liveAliasModels(Client client, String movingAlias, ActionListener<java.util.List<String>> listener) {
        org.opensearch.action.search.SearchRequest search = new org.opensearch.action.search.SearchRequest(REGISTRY_INDEX).source(
            new org.opensearch.search.builder.SearchSourceBuilder().query(org.opensearch.index.query.QueryBuilders.termQuery("kind", "alias"))
                .size(1000).fetchSource(new String[] {"alias", "model_id"}, null));
        asSystem(client, ActionListener.<org.opensearch.action.search.SearchResponse>wrap(resp -> {
            java.util.TreeSet<String> ids = new java.util.TreeSet<>();
            for (org.opensearch.search.SearchHit hit : resp.getHits().getHits()) {
                Map<String, Object> src = hit.getSourceAsMap();
                Object alias = src.get("alias");
                Object id = src.get("model_id");
                if (id != null && (movingAlias == null || !movingAlias.equals(alias))) {
                    ids.add(id.toString());
                }
            }
            listener.onResponse(new java.util.ArrayList<>(ids));
        }, e -> {
            if (org.opensearch.ExceptionsHelper.unwrapCause(e) instanceof IndexNotFoundException) {
                listener.onResponse(java.util.List.of());
            } else {
                listener.onFailure(e);
            }
        }), l -> client.search(search, l));
    }

    @SuppressWarnings("unchecked")
    static Resolved resolved(String modelId, String alias, Map<String, Object> record) {
        Object blend = record.get("blend");
        if (blend != null && !(blend instanceof Map)) {
            throw badRequest("model [" + modelId + "]: the blend settings of its upload record are not an object: " + blend);
        }
        return new Resolved(modelId, String.valueOf(record.get("sha256")), alias, (Map<String, Object>) blend);
    }

    /** The upload record of {@code modelId}, or {@code null} when there is none (or no models index). */
    public static void readRecord(Client client, String modelId, ActionListener<Map<String, Object>> listener) {
        asSystem(client, ActionListener.<GetResponse>wrap(
            r -> listener.onResponse(r.isExists() ? r.getSourceAsMap() : null),
            e -> {
                if (e instanceof IndexNotFoundException) {
                    listener.onResponse(null);
                } else {
                    listener.onFailure(e);
                }
            }), l -> client.get(new GetRequest(MODELS_INDEX, modelId), l));
    }

    /**
     * The decoded {@code data} field of one chunk document, read with a streaming parser that decodes the base64 string
     * straight into bytes (no source map, no intermediate String of the chunk); {@code null} when the field is missing.
     */
    static byte[] chunkData(GetResponse chunk) throws java.io.IOException {
        try (org.opensearch.core.xcontent.XContentParser p = org.opensearch.common.xcontent.XContentHelper.createParser(
            org.opensearch.core.xcontent.NamedXContentRegistry.EMPTY,
            org.opensearch.core.xcontent.DeprecationHandler.THROW_UNSUPPORTED_OPERATION, chunk.getSourceAsBytesRef(),
            org.opensearch.common.xcontent.XContentType.JSON)) {
            p.nextToken();
            org.opensearch.core.xcontent.XContentParser.Token token;
            while ((token = p.nextToken()) == org.opensearch.core.xcontent.XContentParser.Token.FIELD_NAME) {
                String field = p.currentName();
                p.nextToken();
                if ("data".equals(field)) {
                    return p.binaryValue();
                }
                p.skipChildren();
            }
            return null;
        }
    }

    /** The zip bytes of {@code modelId} reassembled from its {@code totalChunks} chunks (one multi-get). */
    public static void readZip(Client client, String modelId, int totalChunks, ActionListener<byte[]> listener) {
        MultiGetRequest req = new MultiGetRequest();
        for (int i = 0; i < totalChunks; i++) {
            req.add(MODELS_INDEX, chunkId(modelId, i));
        }
        ModelStore.<org.opensearch.action.get.MultiGetResponse>asSystem(client, ActionListener.wrap(resp -> {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            for (MultiGetItemResponse item : resp.getResponses()) {
                if (item.isFailed() || !item.getResponse().isExists()) {
                    listener.onFailure(badRequest("model [" + modelId + "]: chunk " + item.getId() + " is missing from " + MODELS_INDEX
                        + "; upload the zip again (distilrank plugin register)"));
                    return;
                }
                byte[] data = chunkData(item.getResponse());
                if (data == null) {
                    listener.onFailure(badRequest("model [" + modelId + "]: chunk " + item.getId() + " has no data in " + MODELS_INDEX
                        + "; upload the zip again (distilrank plugin register)"));
                    return;
                }
                out.write(data);
            }
            listener.onResponse(out.toByteArray());
        }, listener::onFailure), l -> client.multiGet(req, l));
    }
}
