import { create } from "@bufbuild/protobuf";
import { TensorProtoSchema, TensorProto_DataType, type TensorProto } from "../../gen/onnx/onnx_pb.js";

/** ONNX element types our tooling reads and writes. */
export const DataType = TensorProto_DataType;

/** A typed array that maps onto one ONNX element type. */
export type TensorData =
  | Float32Array
  | Uint16Array
  | Int32Array
  | BigInt64Array
  | Int8Array
  | Uint8Array;

/** A dense tensor in memory: element type, shape and values (row-major). */
export interface DenseTensor {
  dataType: TensorProto_DataType;
  dims: number[];
  data: TensorData;
}

const elementSize: Partial<Record<TensorProto_DataType, number>> = {
  [DataType.FLOAT]: 4,
  [DataType.FLOAT16]: 2,
  [DataType.INT32]: 4,
  [DataType.INT64]: 8,
  [DataType.INT8]: 1,
  [DataType.UINT8]: 1,
  [DataType.BOOL]: 1,
};

/** Number of elements of a shape (1 for a scalar). */
export function elementCount(dims: readonly number[]): number {
  return dims.reduce((product, dim) => product * dim, 1);
}

/**
 * Builds a TensorProto initializer with `raw_data` (little-endian, as ONNX requires).
 * Throws when the data length does not match the shape.
 */
export function makeTensor(name: string, tensor: DenseTensor): TensorProto {
  const size = elementSize[tensor.dataType];
  if (size === undefined) throw new Error(`makeTensor: unsupported data type ${TensorProto_DataType[tensor.dataType]}`);
  const count = elementCount(tensor.dims);
  if (tensor.dataType !== DataType.UINT8 && tensor.data.length !== count) {
    throw new Error(`makeTensor ${name}: ${tensor.data.length} values for shape [${tensor.dims.join(",")}]`);
  }
  const bytes = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  return create(TensorProtoSchema, {
    name,
    dataType: tensor.dataType,
    dims: tensor.dims.map(BigInt),
    rawData: new Uint8Array(bytes),
  });
}

/** Float32 initializer from values and shape. */
export function floatTensor(name: string, dims: number[], values: ArrayLike<number>): TensorProto {
  return makeTensor(name, { dataType: DataType.FLOAT, dims, data: Float32Array.from(values) });
}

/** Int64 initializer from values and shape (used for shapes, axes, indices). */
export function int64Tensor(name: string, dims: number[], values: ArrayLike<number>): TensorProto {
  return makeTensor(name, {
    dataType: DataType.INT64,
    dims,
    data: BigInt64Array.from(Array.from(values, (value) => BigInt(value))),
  });
}

/**
 * Reads an initializer back into a typed array, whether it stores `raw_data` or the typed
 * repeated fields. Float16 comes back as raw Uint16 bits.
 */
export function readTensor(tensor: TensorProto): DenseTensor {
  const dims = tensor.dims.map(Number);
  const count = elementCount(dims);
  const dataType = tensor.dataType as TensorProto_DataType;
  const raw = tensor.rawData;
  if (raw.length > 0) {
    // Uint8Array.from copies; a Node Buffer's slice() would be a view of the whole file's buffer.
    const copy = Uint8Array.from(raw).buffer;
    switch (dataType) {
      case DataType.FLOAT: return { dataType, dims, data: new Float32Array(copy) };
      case DataType.FLOAT16: return { dataType, dims, data: new Uint16Array(copy) };
      case DataType.INT32: return { dataType, dims, data: new Int32Array(copy) };
      case DataType.INT64: return { dataType, dims, data: new BigInt64Array(copy) };
      case DataType.INT8: return { dataType, dims, data: new Int8Array(copy) };
      case DataType.UINT8:
      case DataType.BOOL: return { dataType, dims, data: new Uint8Array(copy) };
      default: throw new Error(`readTensor ${tensor.name}: unsupported data type ${TensorProto_DataType[dataType]}`);
    }
  }
  switch (dataType) {
    case DataType.FLOAT: return { dataType, dims, data: Float32Array.from(tensor.floatData.length ? tensor.floatData : new Array(count).fill(0)) };
    case DataType.INT64: return { dataType, dims, data: BigInt64Array.from(tensor.int64Data) };
    case DataType.INT32: return { dataType, dims, data: Int32Array.from(tensor.int32Data) };
    case DataType.FLOAT16: return { dataType, dims, data: Uint16Array.from(tensor.int32Data) };
    case DataType.INT8: return { dataType, dims, data: Int8Array.from(tensor.int32Data) };
    case DataType.UINT8:
    case DataType.BOOL: return { dataType, dims, data: Uint8Array.from(tensor.int32Data) };
    default: throw new Error(`readTensor ${tensor.name}: unsupported data type ${TensorProto_DataType[dataType]}`);
  }
}
