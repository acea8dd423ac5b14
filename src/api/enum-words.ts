import type { DescEnum, DescEnumValue } from "@bufbuild/protobuf";

/**
 * The lowercase word of an enum value: its name without the enum's shared
 * prefix (`QUANTIZATION_INT8` -> "int8", `HARDWARE_PROFILE_AUTO` -> "auto").
 * These words are the seed REST API's enum spelling and, by design, also the
 * domain's string unions, so one rule converts both ways.
 */
export function enumWord(value: DescEnumValue): string {
  const prefix = value.parent.sharedPrefix?.toUpperCase();
  const name = prefix !== undefined && value.name.startsWith(prefix) ? value.name.slice(prefix.length) : value.name;
  return name.toLowerCase();
}

/** The word of the value numbered `number`, or undefined for a number the enum does not declare. */
export function enumWordOf(schema: DescEnum, number: number): string | undefined {
  const value = schema.value[number];
  return value === undefined ? undefined : enumWord(value);
}

/**
 * Finds an enum value by the spellings clients send: the full name
 * (`QUANTIZATION_INT8`), the lowercase word ("int8"), any letter case of either,
 * and "-" for "_". Undefined when nothing matches.
 */
export function enumValueFromWord(schema: DescEnum, text: string): DescEnumValue | undefined {
  const wanted = text.trim().toLowerCase().replaceAll("-", "_");
  return schema.values.find((value) => value.name.toLowerCase() === wanted || enumWord(value) === wanted);
}
