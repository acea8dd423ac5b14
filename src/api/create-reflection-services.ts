import { toBinary } from "@bufbuild/protobuf";
import type { DescEnum, DescExtension, DescFile, DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import type { ServerReflection as ServerReflectionV1, ServerReflectionRequest as RequestV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import type {
  ServerReflection as ServerReflectionV1alpha,
  ServerReflectionRequest as RequestV1alpha,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** The answer to one reflection request, identical in v1 and v1alpha. */
type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: Array<{ name: string }> } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/** The two reflection services, one per protocol version clients speak. */
export interface ReflectionServices {
  v1: ServiceImpl<typeof ServerReflectionV1>;
  v1alpha: ServiceImpl<typeof ServerReflectionV1alpha>;
}

/**
 * gRPC server reflection, `grpc.reflection.v1` and `grpc.reflection.v1alpha`,
 * answered from the protobuf-es file descriptors compiled into `gen/` (no npm
 * package provides reflection for connect-es). It lists `serviceNames`, and
 * finds files by name, by contained symbol (service, method, message, field,
 * enum, enum value, extension) and by extension, always sending the file with
 * all its transitive dependencies, which is what `buf curl` and grpcurl
 * expect. `files` are the roots; their dependencies are found from them.
 */
export function createReflectionServices(files: readonly DescFile[], serviceNames: readonly string[]): ReflectionServices {
  const answer = createReflectionIndex(files, serviceNames);
  return {
    v1: {
      async *serverReflectionInfo(requests) {
        for await (const request of requests) {
          yield { validHost: request.host, originalRequest: request, messageResponse: answer(request.messageRequest) };
        }
      },
    },
    v1alpha: {
      async *serverReflectionInfo(requests) {
        for await (const request of requests) {
          yield { validHost: request.host, originalRequest: request, messageResponse: answer(request.messageRequest) };
        }
      },
    },
  };
}

function createReflectionIndex(
  roots: readonly DescFile[],
  serviceNames: readonly string[],
): (request: RequestV1["messageRequest"] | RequestV1alpha["messageRequest"]) => ReflectionAnswer {
  const fileByName = new Map<string, DescFile>();
  const fileBySymbol = new Map<string, DescFile>();
  const extensionsByType = new Map<string, Map<number, DescFile>>();
  const serialized = new Map<DescFile, Uint8Array>();

  const addExtension = (extension: DescExtension, file: DescFile): void => {
    fileBySymbol.set(extension.typeName, file);
    const numbers = extensionsByType.get(extension.extendee.typeName) ?? new Map<number, DescFile>();
    numbers.set(extension.number, file);
    extensionsByType.set(extension.extendee.typeName, numbers);
  };
  const addEnum = (schema: DescEnum, file: DescFile): void => {
    fileBySymbol.set(schema.typeName, file);
    const scope = schema.typeName.slice(0, schema.typeName.lastIndexOf(".") + 1);
    for (const value of schema.values) fileBySymbol.set(scope + value.name, file);
  };
  const addMessage = (schema: DescMessage, file: DescFile): void => {
    fileBySymbol.set(schema.typeName, file);
    for (const field of schema.fields) fileBySymbol.set(`${schema.typeName}.${field.name}`, file);
    for (const oneof of schema.oneofs) fileBySymbol.set(`${schema.typeName}.${oneof.name}`, file);
    for (const nested of schema.nestedMessages) addMessage(nested, file);
    for (const nested of schema.nestedEnums) addEnum(nested, file);
    for (const nested of schema.nestedExtensions) addExtension(nested, file);
  };
  const addFile = (file: DescFile): void => {
    if (fileByName.has(file.proto.name)) return;
    fileByName.set(file.proto.name, file);
    for (const service of file.services) {
      fileBySymbol.set(service.typeName, file);
      for (const method of service.methods) fileBySymbol.set(`${service.typeName}.${method.name}`, file);
    }
    for (const schema of file.messages) addMessage(schema, file);
    for (const schema of file.enums) addEnum(schema, file);
    for (const extension of file.extensions) addExtension(extension, file);
    for (const dependency of file.dependencies) addFile(dependency);
  };
  for (const file of roots) addFile(file);

  const withDependencies = (file: DescFile): ReflectionAnswer => {
    const ordered: DescFile[] = [];
    const visit = (current: DescFile): void => {
      if (ordered.includes(current)) return;
      ordered.push(current);
      for (const dependency of current.dependencies) visit(dependency);
    };
    visit(file);
    const fileDescriptorProto = ordered.map((current) => {
      const bytes = serialized.get(current) ?? toBinary(FileDescriptorProtoSchema, current.proto);
      serialized.set(current, bytes);
      return bytes;
    });
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto } };
  };
  const notFound = (what: string): ReflectionAnswer => ({
    case: "errorResponse",
    value: { errorCode: Code.NotFound, errorMessage: `${what} not found` },
  });

  return (request) => {
    switch (request.case) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: serviceNames.map((name) => ({ name })) } };
      case "fileByFilename": {
        const file = fileByName.get(request.value);
        return file === undefined ? notFound(`file ${request.value}`) : withDependencies(file);
      }
      case "fileContainingSymbol": {
        const file = fileBySymbol.get(request.value.replace(/^\./, ""));
        return file === undefined ? notFound(`symbol ${request.value}`) : withDependencies(file);
      }
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = request.value;
        const file = extensionsByType.get(containingType.replace(/^\./, ""))?.get(extensionNumber);
        return file === undefined ? notFound(`extension ${extensionNumber} of ${containingType}`) : withDependencies(file);
      }
      case "allExtensionNumbersOfType": {
        const baseTypeName = request.value.replace(/^\./, "");
        if (!fileBySymbol.has(baseTypeName)) return notFound(`type ${request.value}`);
        return {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName, extensionNumber: [...(extensionsByType.get(baseTypeName)?.keys() ?? [])] },
        };
      }
      default:
        return { case: "errorResponse", value: { errorCode: Code.InvalidArgument, errorMessage: "empty reflection request" } };
    }
  };
}
