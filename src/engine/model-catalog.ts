import type { ModelCatalog } from "../front-door/create-front-door.js";
import type { ServingSettings } from "../domain/types.js";
import type { ModelRegistry } from "../models/registry.js";

/**
 * The model rpcs over the registry: ListModels keeps the models whose native
 * or Matryoshka sizes include `dimensions` and that declare the tier asked for
 * (a model declaring no tiers serves every tier; `auto` filters nothing);
 * GetModel finds one by id or alias; DownloadModel starts or polls a download.
 * Every model listed carries `serving`, the tier and engine settings it runs with.
 */
export function createModelCatalog(registry: ModelRegistry, serving: ServingSettings): Required<ModelCatalog> {
  return {
    async listModels(filter) {
      return registry.describe().filter((model) =>
        (!filter.dimensions || model.dimensions === filter.dimensions || model.matryoshkaDimensions.includes(filter.dimensions)) &&
        (!filter.hardwareProfile || filter.hardwareProfile === "auto" || model.hardwareProfiles.length === 0 || model.hardwareProfiles.includes(filter.hardwareProfile)))
        .map((model) => ({ ...model, serving }));
    },
    getModel: async (modelId) => ({ ...(await registry.describeOne(modelId)), serving }),
    downloadModel: (modelId, revision) => registry.download(modelId, revision),
  };
}
