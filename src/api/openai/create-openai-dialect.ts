import type { Embedder } from "../../domain/types.js";
import { EmbedderService } from "../../../gen/sutra/embedder/v1/embedder_pb.js";
import { principalKey } from "../access-policy.js";
import { sendJson } from "../node-types.js";
import { admissionKey, answerHeaders, PROVIDER_HEADER } from "../request-context.js";
import type { RestDialect } from "../rest/create-rest-handler.js";
import { toOpenAiResponse } from "./openai-response.js";
import { isOpenAiBody, parseOpenAiRequest } from "./parse-openai-request.js";

/** What the OpenAI dialect needs. */
export interface OpenAiDialectDeps {
  embedder: Embedder;
}

/**
 * The OpenAI dialect of `POST /v1/embeddings` (and `/api/v1/embeddings`): a
 * body with `input` is answered in OpenAI's shape (`object: list`,
 * `data[].embedding`, `model`, `usage`) through the same pipeline, limits and
 * admission as every other transport, so the official OpenAI SDKs work with
 * `baseURL=<server>/v1`. Errors use the shared HTTP envelope, which carries
 * OpenAI's `message`, `type`, `param` and `code`.
 */
export function createOpenAiDialect(deps: OpenAiDialectDeps): RestDialect {
  return {
    method: EmbedderService.method.generateEmbeddings,
    accepts: isOpenAiBody,
    async serve({ request: httpRequest, response, requestId, body, values }) {
      if (!isOpenAiBody(body)) return;
      const { request, encodingFormat } = await parseOpenAiRequest(body, requestId, values.get(principalKey));
      const provider = httpRequest.headers[PROVIDER_HEADER];
      if (typeof provider === "string") request.provider = provider;
      request.admission = values.get(admissionKey);
      const clientGone = new AbortController();
      const onClose = (): void => {
        if (!response.writableFinished) clientGone.abort();
      };
      response.once("close", onClose);
      try {
        const result = await deps.embedder.embed(request, clientGone.signal);
        sendJson(response, 200, answerHeaders(result), toOpenAiResponse(result, encodingFormat));
      } finally {
        response.off("close", onClose);
      }
    },
  };
}
