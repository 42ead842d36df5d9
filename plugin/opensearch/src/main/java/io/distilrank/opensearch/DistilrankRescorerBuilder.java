package io.distilrank.opensearch;

import org.apache.lucene.util.SetOnce;
import org.opensearch.core.ParseField;
import org.opensearch.core.common.ParsingException;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.index.mapper.MappedFieldType;
import org.opensearch.index.query.QueryRewriteContext;
import org.opensearch.index.query.QueryShardContext;
import org.opensearch.search.rescore.RescoreContext;
import org.opensearch.search.rescore.RescorerBuilder;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.function.Supplier;

/**
 * {@code "rescore": {"window_size": 100, "distilrank": {"model": "prod", "query_text": "...", "fields": ["title"],
 * "score_mode": "blend", "query_weight": 1.0, "model_weight": 1.0, "normalization": "min_max", "text_source": "auto",
 * "token_ids_field": "distilrank_token_ids"}}}.
 *
 * <p>Rewrite (async, no blocking): on the coordinating node {@code model} is resolved once per search to a model id,
 * its SHA-256 and the {@code blend} settings stored with it ({@link ModelStore#resolve}); the body's
 * {@code score_mode}, {@code query_weight}, {@code model_weight} and {@code normalization} override the stored ones
 * field by field ({@link BlendParams#resolve}), and the resolved values travel to the shards. On every node that
 * runs the rescore the model is then loaded into the node's {@link ModelCache} if it is not there yet. The shard
 * context checks that each field is mapped and picks where the text is read from ({@code auto}: stored fields when
 * every field is stored, else {@code _source}). With {@code token_ids_field} (a {@code binary} field with doc values
 * holding each document's ids from index time, {@link TokenIds}) the texts are only read for documents whose ids are
 * missing or were written by another tokenizer.
 * Every problem is a 4xx error with a message naming it.
 */
public final class DistilrankRescorerBuilder extends RescorerBuilder<DistilrankRescorerBuilder> {
    public static final String NAME = "distilrank";
    private static final ParseField MODEL = new ParseField("model");
    private static final ParseField QUERY_TEXT = new ParseField("query_text");
    private static final ParseField FIELDS = new ParseField("fields");
    private static final ParseField SCORE_MODE = new ParseField("score_mode");
    private static final ParseField QUERY_WEIGHT = new ParseField("query_weight");
    private static final ParseField MODEL_WEIGHT = new ParseField("model_weight");
    private static final ParseField NORMALIZATION = new ParseField("normalization");
    private static final ParseField TEXT_SOURCE = new ParseField("text_source");
    private static final ParseField TOKEN_IDS_FIELD = new ParseField("token_ids_field");

    /** The coordinator's resolution: the model and the blend the shards use. */
    private record Resolution(ModelStore.Resolved model, BlendParams blend) {}

    private final ModelCache cache;
    private String model;
    private String queryText;
    private List<String> fields = new ArrayList<>();
    private BlendParams given = BlendParams.NONE_GIVEN;
    private BlendParams resolved;
    private String textSource = "auto";
    private String tokenIdsField;
    private String modelId;
    private String sha256;
    private Supplier<Resolution> pending;
    private boolean loadRequested;

    public DistilrankRescorerBuilder(ModelCache cache) {
        this.cache = cache;
    }

    public DistilrankRescorerBuilder(StreamInput in, ModelCache cache) throws IOException {
        super(in);
        this.cache = cache;
        model = in.readString();
        queryText = in.readString();
        fields = in.readStringList();
        given = new BlendParams(in.readOptionalString(), in.readOptionalDouble(), in.readOptionalDouble(), in.readOptionalString());
        textSource = in.readString();
        modelId = in.readOptionalString();
        sha256 = in.readOptionalString();
        if (in.readBoolean()) {
            resolved = new BlendParams(in.readString(), in.readDouble(), in.readDouble(), in.readString());
        }
        tokenIdsField = in.readOptionalString();
    }

    @Override
    protected void doWriteTo(StreamOutput out) throws IOException {
        out.writeString(model);
        out.writeString(queryText);
        out.writeStringCollection(fields);
        out.writeOptionalString(given.scoreMode());
        out.writeOptionalDouble(given.queryWeight());
        out.writeOptionalDouble(given.modelWeight());
        out.writeOptionalString(given.normalization());
        out.writeString(textSource);
        out.writeOptionalString(modelId);
        out.writeOptionalString(sha256);
        out.writeBoolean(resolved != null);
        if (resolved != null) {
            out.writeString(resolved.scoreMode());
            out.writeDouble(resolved.queryWeight());
            out.writeDouble(resolved.modelWeight());
            out.writeString(resolved.normalization());
        }
        out.writeOptionalString(tokenIdsField);
    }

    /** Refuses a window below 1 (core would fail with a 500 on a negative array size). */
    @Override
    public DistilrankRescorerBuilder windowSize(int windowSize) {
        if (windowSize < 1) {
            throw new IllegalArgumentException("[distilrank] window_size must be >= 1, got " + windowSize);
        }
        return super.windowSize(windowSize);
    }

    @Override
    public String getWriteableName() {
        return NAME;
    }

    /** Parses the object after {@code "distilrank":} and validates it (400 on any mistake). */
    public static DistilrankRescorerBuilder fromXContent(XContentParser parser, ModelCache cache) throws IOException {
        DistilrankRescorerBuilder b = new DistilrankRescorerBuilder(cache);
        String scoreMode = null;
        Double queryWeight = null;
        Double modelWeight = null;
        String normalization = null;
        String field = null;
        XContentParser.Token token;
        while ((token = parser.nextToken()) != XContentParser.Token.END_OBJECT) {
            if (token == XContentParser.Token.FIELD_NAME) {
                field = parser.currentName();
            } else if (token == XContentParser.Token.START_ARRAY && FIELDS.match(field, parser.getDeprecationHandler())) {
                while (parser.nextToken() != XContentParser.Token.END_ARRAY) {
                    b.fields.add(parser.text());
                }
            } else if (token.isValue()) {
                if (MODEL.match(field, parser.getDeprecationHandler())) {
                    b.model = parser.text();
                } else if (QUERY_TEXT.match(field, parser.getDeprecationHandler())) {
                    b.queryText = parser.text();
                } else if (FIELDS.match(field, parser.getDeprecationHandler())) {
                    b.fields.add(parser.text());
                } else if (SCORE_MODE.match(field, parser.getDeprecationHandler())) {
                    scoreMode = parser.text().toLowerCase(Locale.ROOT);
                } else if (QUERY_WEIGHT.match(field, parser.getDeprecationHandler())) {
                    queryWeight = parser.doubleValue();
                } else if (MODEL_WEIGHT.match(field, parser.getDeprecationHandler())) {
                    modelWeight = parser.doubleValue();
                } else if (NORMALIZATION.match(field, parser.getDeprecationHandler())) {
                    normalization = parser.text();
                } else if (TEXT_SOURCE.match(field, parser.getDeprecationHandler())) {
                    b.textSource = parser.text();
                } else if (TOKEN_IDS_FIELD.match(field, parser.getDeprecationHandler())) {
                    b.tokenIdsField = parser.text();
                } else {
                    throw new ParsingException(parser.getTokenLocation(), "[distilrank] unknown field [" + field + "] (known: model, query_text, "
                        + "fields, score_mode, query_weight, model_weight, normalization, text_source, token_ids_field)");
                }
            } else {
                throw new ParsingException(parser.getTokenLocation(), "[distilrank] unexpected " + token + " for field [" + field + "]");
            }
        }
        if (b.model == null || b.model.isBlank()) {
            throw new ParsingException(parser.getTokenLocation(), "[distilrank] model is required: an alias (staging, prod) or a model id");
        }
        if (b.queryText == null) {
            throw new ParsingException(parser.getTokenLocation(), "[distilrank] query_text is required: the text the model pairs with each hit");
        }
        if (b.fields.isEmpty()) {
            throw new ParsingException(parser.getTokenLocation(), "[distilrank] fields is required: the document fields the student was trained on, e.g. [\"title\"]");
        }
        try {
            b.given = new BlendParams(scoreMode, queryWeight, modelWeight, normalization);
        } catch (IllegalArgumentException e) {
            throw new ParsingException(parser.getTokenLocation(), "[distilrank] " + e.getMessage());
        }
        if (!List.of("auto", "_source", "stored", "doc_values").contains(b.textSource)) {
            throw new ParsingException(parser.getTokenLocation(), "[distilrank] text_source must be auto, _source, stored or doc_values, got ["
                + b.textSource + "]");
        }
        return b;
    }

    @Override
    protected void doXContent(XContentBuilder builder, Params params) throws IOException {
        builder.startObject(NAME);
        builder.field(MODEL.getPreferredName(), model);
        builder.field(QUERY_TEXT.getPreferredName(), queryText);
        builder.field(FIELDS.getPreferredName(), fields);
        if (given.scoreMode() != null) {
            builder.field(SCORE_MODE.getPreferredName(), given.scoreMode());
        }
        if (given.queryWeight() != null) {
            builder.field(QUERY_WEIGHT.getPreferredName(), given.queryWeight());
        }
        if (given.modelWeight() != null) {
            builder.field(MODEL_WEIGHT.getPreferredName(), given.modelWeight());
        }
        if (given.normalization() != null) {
            builder.field(NORMALIZATION.getPreferredName(), given.normalization());
        }
        builder.field(TEXT_SOURCE.getPreferredName(), textSource);
        if (tokenIdsField != null) {
            builder.field(TOKEN_IDS_FIELD.getPreferredName(), tokenIdsField);
        }
        builder.endObject();
    }

    private DistilrankRescorerBuilder copy() {
        DistilrankRescorerBuilder b = new DistilrankRescorerBuilder(cache);
        b.windowSize = windowSize;
        b.model = model;
        b.queryText = queryText;
        b.fields = fields;
        b.given = given;
        b.resolved = resolved;
        b.textSource = textSource;
        b.tokenIdsField = tokenIdsField;
        b.modelId = modelId;
        b.sha256 = sha256;
        return b;
    }

    /** A copy resolved to {@code modelId} and the blend the shards use (what the coordinator's rewrite makes). */
    DistilrankRescorerBuilder resolvedTo(String modelId, String sha256, BlendParams blend) {
        DistilrankRescorerBuilder b = copy();
        b.modelId = modelId;
        b.sha256 = sha256;
        b.resolved = blend;
        return b;
    }

    @Override
    public DistilrankRescorerBuilder rewrite(QueryRewriteContext ctx) throws IOException {
        if (modelId == null) {
            if (pending != null) {
                Resolution r = pending.get();
                if (r == null) {
                    return this;
                }
                return resolvedTo(r.model().modelId(), r.model().sha256(), r.blend());
            }
            SetOnce<Resolution> holder = new SetOnce<>();
            ctx.registerAsyncAction((client, listener) -> ModelStore.resolve(client, model, org.opensearch.core.action.ActionListener.wrap(
                r -> {
                    BlendParams blend;
                    try {
                        blend = given.resolve(BlendParams.fromStored(r.blend()));
                    } catch (IllegalArgumentException e) {
                        listener.onFailure(ModelStore.badRequest("[distilrank] model [" + r.modelId() + "]: the blend settings stored with it "
                            + "are invalid: " + e.getMessage() + " (upload it again with valid settings)"));
                        return;
                    }
                    holder.set(new Resolution(r, blend));
                    listener.onResponse(null);
                }, listener::onFailure)));
            DistilrankRescorerBuilder b = copy();
            b.pending = holder::get;
            return b;
        }
        if (cache.isLoaded(modelId, sha256) || loadRequested) {
            return this;
        }
        ctx.registerAsyncAction((client, listener) -> cache.ensureLoaded(client, modelId, sha256,
            org.opensearch.core.action.ActionListener.wrap(m -> listener.onResponse(null), listener::onFailure)));
        DistilrankRescorerBuilder b = copy();
        b.loadRequested = true;
        return b;
    }

    @Override
    protected RescoreContext innerBuildContext(int windowSize, QueryShardContext context) throws IOException {
        if (modelId == null || resolved == null) {
            throw ModelStore.badRequest("[distilrank] model [" + model + "] was not resolved (the request was not rewritten)");
        }
        boolean allStored = true;
        boolean allKeywordDocValues = true;
        for (String f : fields) {
            MappedFieldType type = context.fieldMapper(f);
            if (type == null) {
                throw ModelStore.badRequest("[distilrank] field [" + f + "] is not mapped in index [" + context.index().getName()
                    + "]: the model would score every hit on an empty text");
            }
            allStored &= type.isStored();
            allKeywordDocValues &= "keyword".equals(type.typeName()) && type.hasDocValues();
        }
        DocumentTexts.Source source = switch (textSource) {
            case "stored" -> {
                if (!allStored) {
                    throw ModelStore.badRequest("[distilrank] text_source stored needs every field of " + fields + " mapped with store: true");
                }
                yield DocumentTexts.Source.STORED;
            }
            case "doc_values" -> {
                if (!allKeywordDocValues) {
                    throw ModelStore.badRequest("[distilrank] text_source doc_values needs every field of " + fields
                        + " mapped as keyword with doc_values");
                }
                yield DocumentTexts.Source.DOC_VALUES;
            }
            case "_source" -> DocumentTexts.Source.SOURCE;
            default -> allKeywordDocValues ? DocumentTexts.Source.DOC_VALUES
                : allStored ? DocumentTexts.Source.STORED : DocumentTexts.Source.SOURCE;
        };
        if (!cache.isLoaded(modelId, sha256)) {
            throw ModelStore.badRequest("[distilrank] model [" + modelId + "] is not loaded on this node");
        }
        String shard = context.index().getUUID() + "/" + context.getShardId();
        return new DistilrankRescorer.Context(windowSize, cache, model, modelId, sha256, queryText, List.copyOf(fields), source,
            tokenIdsField, tokenIdsData(context), resolved, shard);
    }

    /** The field data of {@code token_ids_field} ({@code null} when not given); 400 unless it is a binary field with doc values. */
    private org.opensearch.index.fielddata.IndexFieldData<?> tokenIdsData(QueryShardContext context) {
        if (tokenIdsField == null) {
            return null;
        }
        MappedFieldType type = context.fieldMapper(tokenIdsField);
        if (type == null || !"binary".equals(type.typeName()) || !type.hasDocValues()) {
            throw ModelStore.badRequest("[distilrank] token_ids_field [" + tokenIdsField + "] must be mapped in index ["
                + context.index().getName() + "] as {\"type\": \"binary\", \"doc_values\": true} (distilrank plugin tokenize-index "
                + "adds and fills it), got " + (type == null ? "no mapping" : type.typeName()
                + (type.hasDocValues() ? "" : " without doc_values")));
        }
        return context.getForField(type);
    }

    @Override
    public boolean equals(Object o) {
        if (!super.equals(o)) {
            return false;
        }
        DistilrankRescorerBuilder b = (DistilrankRescorerBuilder) o;
        return model.equals(b.model) && queryText.equals(b.queryText) && fields.equals(b.fields) && given.equals(b.given)
            && Objects.equals(resolved, b.resolved) && textSource.equals(b.textSource) && Objects.equals(tokenIdsField, b.tokenIdsField)
            && Objects.equals(modelId, b.modelId) && Objects.equals(sha256, b.sha256);
    }

    @Override
    public int hashCode() {
        return Objects.hash(super.hashCode(), model, queryText, fields, given, resolved, textSource, tokenIdsField, modelId, sha256);
    }

    String model() {
        return model;
    }

    String queryText() {
        return queryText;
    }

    List<String> fields() {
        return fields;
    }

    /** The body's {@code score_mode}, or {@code null} when it did not give one. */
    String scoreMode() {
        return given.scoreMode();
    }

    /** What the body gave ({@code null} fields: not given). */
    BlendParams given() {
        return given;
    }

    /** The values the shards use, set by the coordinator's rewrite ({@code null} before). */
    BlendParams resolved() {
        return resolved;
    }
}
