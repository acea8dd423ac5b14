#!/usr/bin/env python3
"""Stream texts to Sutra Embedder over the bidirectional StreamEmbeddings rpc from Python.

Like embed_client.py (whose reflection helpers it reuses), it needs no protoc
and no generated code: the message classes come from the server through gRPC
server reflection. Only grpcio and protobuf are needed (Debian: python3-grpcio,
python3-protobuf; pip: grpcio protobuf).

    python3 stream_client.py --target 127.0.0.1:8080 --buffer-size 32 < texts.json

It reads a JSON list of texts on stdin, sends the config, then one chunk per
text (chunk_id "c<index>", position = index, is_final on the last one),
while grpcio sends them from its own thread this one reads the answers as
they come. It prints one JSON
object: {"answers": [{"chunk_id", "sequence_position", "latency_ms",
"model_used", "embedding"} or {"chunk_id", "error": {"code", "message",
"retry_after_ms"}}, ...]} in arrival order. A failed stream prints
{"error": {"code", "message", "reason"}} and exits with status 1.
"""

import argparse
import json
import sys

import grpc

from embed_client import SERVICE, build_pool, error_reason, fetch_file_descriptors, message_class


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="127.0.0.1:8080", help="host:port of the server")
    parser.add_argument("--model", default="", help="preset, model id or alias (default: the efficient preset)")
    parser.add_argument("--buffer-size", type=int, default=0, help="chunks per flush (0 = the server's default, 32)")
    parser.add_argument("--max-latency-ms", type=int, default=0, help="longest wait of a chunk before a flush (0 = 50)")
    args = parser.parse_args()
    texts = json.load(sys.stdin)

    with grpc.insecure_channel(args.target) as channel:
        files = fetch_file_descriptors(channel, [SERVICE, "google.rpc.Status", "google.rpc.ErrorInfo"])
        pool = build_pool(files)
        method = pool.FindServiceByName(SERVICE).FindMethodByName("StreamEmbeddings")
        request_class = message_class(pool, method.input_type.full_name)
        response_class = message_class(pool, method.output_type.full_name)
        stream = channel.stream_stream(
            "/%s/%s" % (SERVICE, method.name),
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )

        def requests():
            request = request_class()
            request.config.model = args.model
            request.config.buffer_size = args.buffer_size
            request.config.max_latency_ms = args.max_latency_ms
            yield request
            for index, text in enumerate(texts):
                request = request_class()
                request.chunk.chunk_id = "c%d" % index
                request.chunk.text = text
                request.chunk.position = index
                request.chunk.is_final = index == len(texts) - 1
                yield request

        answers = []
        try:
            for response in stream(requests(), timeout=120):
                if response.HasField("error"):
                    answers.append({"chunk_id": response.chunk_id, "error": {
                        "code": response.error.code,
                        "message": response.error.message,
                        "retry_after_ms": response.error.retry_after_ms,
                    }})
                else:
                    answers.append({
                        "chunk_id": response.chunk_id,
                        "sequence_position": response.metadata.sequence_position,
                        "latency_ms": response.metadata.latency_ms,
                        "model_used": response.metadata.model_used,
                        "embedding": list(response.embedding.values),
                    })
        except grpc.RpcError as error:
            print(json.dumps({"error": {
                "code": error.code().name,
                "message": error.details(),
                "reason": error_reason(error, pool),
            }}))
            return 1

    print(json.dumps({"answers": answers}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
