package io.distilrank.opensearch;

import org.opensearch.action.ActionRequest;
import org.opensearch.cluster.metadata.IndexNameExpressionResolver;
import org.opensearch.cluster.node.DiscoveryNodes;
import org.opensearch.cluster.service.ClusterService;
import org.opensearch.common.settings.ClusterSettings;
import org.opensearch.common.settings.IndexScopedSettings;
import org.opensearch.common.settings.Setting;
import org.opensearch.common.settings.Settings;
import org.opensearch.common.settings.SettingsFilter;
import org.opensearch.core.action.ActionResponse;
import org.opensearch.core.common.io.stream.NamedWriteableRegistry;
import org.opensearch.core.xcontent.NamedXContentRegistry;
import org.opensearch.env.Environment;
import org.opensearch.env.NodeEnvironment;
import org.opensearch.indices.SystemIndexDescriptor;
import org.opensearch.plugins.ActionPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.plugins.SearchPlugin;
import org.opensearch.plugins.SystemIndexPlugin;
import org.opensearch.repositories.RepositoriesService;
import org.opensearch.rest.RestController;
import org.opensearch.rest.RestHandler;
import org.opensearch.script.ScriptService;
import org.opensearch.threadpool.ThreadPool;
import org.opensearch.transport.client.Client;
import org.opensearch.watcher.ResourceWatcherService;

import java.util.Collection;
import java.util.List;
import java.util.function.Supplier;

/**
 * The distilrank plugin: the {@code distilrank} rescorer, the model upload action, the per-node operations broadcast
 * to every node ({@link NodesModelAction}: stats, warm, evict) and their REST endpoints, and the per-node model cache. Node settings: {@code distilrank.cache.max_models} (4) and
 * {@code distilrank.intra_op_threads} (1: one ONNX Runtime thread per rescore, the search thread pool gives the
 * parallelism).
 */
public final class DistilrankPlugin extends Plugin implements SearchPlugin, ActionPlugin, SystemIndexPlugin {
    static final Setting<Integer> MAX_MODELS = Setting.intSetting("distilrank.cache.max_models", 4, 1, Setting.Property.NodeScope);
    static final Setting<Integer> THREADS = Setting.intSetting("distilrank.intra_op_threads", 1, 1, Setting.Property.NodeScope);

    private final ModelCache cache;

    public DistilrankPlugin(Settings settings) {
        cache = new ModelCache(MAX_MODELS.get(settings), THREADS.get(settings));
    }

    @Override
    public List<Setting<?>> getSettings() {
        return List.of(MAX_MODELS, THREADS);
    }

    @Override
    public List<RescorerSpec<?>> getRescorers() {
        return List.of(new RescorerSpec<>(DistilrankRescorerBuilder.NAME, in -> new DistilrankRescorerBuilder(in, cache),
            p -> DistilrankRescorerBuilder.fromXContent(p, cache)));
    }

    @Override
    public Collection<Object> createComponents(Client client, ClusterService clusterService, ThreadPool threadPool,
                                               ResourceWatcherService resourceWatcherService, ScriptService scriptService,
                                               NamedXContentRegistry xContentRegistry, Environment environment,
                                               NodeEnvironment nodeEnvironment, NamedWriteableRegistry namedWriteableRegistry,
                                               IndexNameExpressionResolver indexNameExpressionResolver,
                                               Supplier<RepositoriesService> repositoriesServiceSupplier) {
        return List.of(cache);
    }

    @Override
    public List<ActionHandler<? extends ActionRequest, ? extends ActionResponse>> getActions() {
        return List.of(new ActionHandler<>(ModelAdminAction.INSTANCE, ModelAdminAction.Transport.class),
            new ActionHandler<>(NodesModelAction.STATS, NodesModelAction.StatsTransport.class),
            new ActionHandler<>(NodesModelAction.ADMIN, NodesModelAction.AdminTransport.class));
    }

    @Override
    public List<RestHandler> getRestHandlers(Settings settings, RestController restController, ClusterSettings clusterSettings,
                                             IndexScopedSettings indexScopedSettings, SettingsFilter settingsFilter,
                                             IndexNameExpressionResolver indexNameExpressionResolver, Supplier<DiscoveryNodes> nodesInCluster) {
        return List.of(new RestHandlers.Models(), new RestHandlers.Stats(), new RestHandlers.Warm());
    }

    @Override
    public Collection<SystemIndexDescriptor> getSystemIndexDescriptors(Settings settings) {
        return List.of(new SystemIndexDescriptor(ModelStore.MODELS_INDEX, "distilrank model zips uploaded for the rescorer"));
    }
}
