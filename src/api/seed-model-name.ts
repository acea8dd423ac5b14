import { LOCAL_PROVIDER } from "../providers/provider-config.js";

/**
 * The model a seed-API body names with a separate `provider` field, in the
 * gateway's `provider:model` spelling (docs/PROVIDERS.md); no provider, "" or
 * `local` leaves the model as it is, for the server's own models.
 */
export function seedModelName(provider: string | undefined, model: string): string {
  return provider === undefined || provider === "" || provider === LOCAL_PROVIDER ? model : `${provider}:${model}`;
}
