/**
 * The Sutra Embedder TypeScript SDK, protocol-neutral part: createSutraClient
 * over any Connect transport, the retry and splitting policies, and the
 * generated message types. `./node.js` and `./web.js` add ready transports.
 */
export { createSutraClient } from "./create-sutra-client.js";
export type {
  CreateJobRequest,
  EmbedRequest,
  EmbedStreamRequest,
  ListJobsRequest,
  ListModelsRequest,
  StreamChunkInit,
  StreamConfigInit,
  SutraClient,
  SutraClientOptions,
} from "./create-sutra-client.js";
export { errorReason, failureFacts, isRetryable, RETRYABLE_REASONS, SUTRA_ERROR_DOMAIN, type FailureFacts } from "./errors.js";
export { DEFAULT_RETRY_OPTIONS, retryDelayMs, type RetryEvent, type RetryOptions } from "./retry.js";
export { DEFAULT_REQUEST_LIMITS, splitInputs, textCost, type InputPart, type RequestLimits } from "./split-inputs.js";
export { cosineSimilarity, similarityMatrix, nearestNeighbours, type Neighbour } from "./similarity.js";
export * from "../../gen/sutra/embedder/v1/embedder_pb.js";
export { Code, ConnectError } from "@connectrpc/connect";
