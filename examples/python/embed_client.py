#!/usr/bin/env python3
"""Embed texts with Sutra Embedder over gRPC from Python, without protoc or generated code.

The client asks the server for its schema through gRPC server reflection
(grpc.reflection.v1), builds the message classes at runtime with
google.protobuf's descriptor pool, and calls GenerateEmbeddings with grpc's
generic stub. Only grpcio and protobuf are needed (Debian: python3-grpcio,
python3-protobuf; pip: grpcio protobuf).

    python3 embed_client.py --target 127.0.0.1:8080 "first text" "second text"

It prints one JSON object: the embeddings, the model that ran, the request id
and the timing headers. A failed call prints {"error": {...}} with the gRPC
code, the message and the service's reason (from the google.rpc.ErrorInfo
detail), and exits with status 1.
"""

import argparse
import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

SERVICE = "sutra.embedder.v1.EmbedderService"
REFLECTION_METHOD = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(data):
    """Yields (field number, value) of the length-delimited fields of a protobuf message."""
    position = 0
    while position < len(data):
        key, position = _read_varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 2:
            length, position = _read_varint(data, position)
            yield number, data[position:position + length]
            position += length
        elif wire_type == 0:
            _, position = _read_varint(data, position)
        elif wire_type == 1:
            position += 8
        elif wire_type == 5:
            position += 4
        else:
            raise ValueError("unsupported wire type %d" % wire_type)


def _read_varint(data, position):
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def fetch_file_descriptors(channel, symbols):
    """Asks server reflection for the files defining `symbols` (and their dependencies).

    ServerReflectionRequest and ServerReflectionResponse are encoded by hand:
    the request is field 4 (file_containing_symbol), the answer field 4
    (file_descriptor_response, whose field 1 repeats serialized files) or
    field 7 (error_response).
    """
    def requests():
        for symbol in symbols:
            encoded = symbol.encode("utf-8")
            yield b"\x22" + _varint(len(encoded)) + encoded

    call = channel.stream_stream(REFLECTION_METHOD, request_serializer=None, response_deserializer=None)
    files = {}
    for response in call(requests(), timeout=10):
        for number, value in _fields(response):
            if number == 7:
                message = dict(_fields(value)).get(2, b"").decode("utf-8")
                raise RuntimeError("reflection failed: " + message)
            if number == 4:
                for inner_number, serialized in _fields(value):
                    if inner_number == 1:
                        proto = descriptor_pb2.FileDescriptorProto.FromString(serialized)
                        files[proto.name] = proto
    return files


def build_pool(files):
    """Adds the files to a fresh descriptor pool, dependencies first."""
    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(name):
        if name in added:
            return
        added.add(name)
        for dependency in files[name].dependency:
            add(dependency)
        pool.Add(files[name])

    for name in files:
        add(name)
    return pool


def message_class(pool, full_name):
    descriptor = pool.FindMessageTypeByName(full_name)
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


def error_reason(error, pool):
    """The reason of the google.rpc.ErrorInfo detail of a failed call, or None."""
    details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    if not details:
        return None
    status = message_class(pool, "google.rpc.Status").FromString(details)
    error_info = message_class(pool, "google.rpc.ErrorInfo")()
    for detail in status.details:
        if detail.Unpack(error_info):
            return error_info.reason
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="127.0.0.1:8080", help="host:port of the server")
    parser.add_argument("--model", default="", help="preset, model id or alias (default: the efficient preset)")
    parser.add_argument("--dimensions", type=int, default=0, help="0 = the model's native size")
    parser.add_argument("--request-id", default=None, help="sent as x-request-id")
    parser.add_argument("texts", nargs="*", help="texts to embed")
    args = parser.parse_args()

    with grpc.insecure_channel(args.target) as channel:
        files = fetch_file_descriptors(channel, [SERVICE, "google.rpc.Status", "google.rpc.ErrorInfo"])
        pool = build_pool(files)
        method = pool.FindServiceByName(SERVICE).FindMethodByName("GenerateEmbeddings")
        request_class = message_class(pool, method.input_type.full_name)
        response_class = message_class(pool, method.output_type.full_name)
        generate = channel.unary_unary(
            "/%s/%s" % (SERVICE, method.name),
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        request = request_class(texts=args.texts, model=args.model, dimensions=args.dimensions)
        metadata = [("x-request-id", args.request_id)] if args.request_id else None
        try:
            response, call = generate.with_call(request, metadata=metadata, timeout=30)
        except grpc.RpcError as error:
            print(json.dumps({"error": {
                "code": error.code().name,
                "message": error.details(),
                "reason": error_reason(error, pool),
            }}))
            return 1

    headers = dict(call.initial_metadata())
    print(json.dumps({
        "model_id": response.model_info.model_id,
        "dimensions": response.model_info.dimensions,
        "embeddings": [list(embedding.values) for embedding in response.embeddings],
        "request_id": headers.get("x-request-id"),
        "timings_ms": {name: headers.get(name) for name in (
            "x-total-time", "x-tokenization-time", "x-queue-time", "x-inference-time")},
        "usage": json_format.MessageToDict(response.usage, preserving_proto_field_name=True),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
