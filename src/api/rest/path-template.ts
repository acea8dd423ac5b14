import { EmbedderError } from "../../domain/errors.js";

/** One segment of a path template: a literal, `*` (one segment) or `**` (the rest of the path). */
type TemplateSegment = { kind: "literal"; text: string } | { kind: "one" } | { kind: "rest" };

/** A variable of a template: the request field it binds and the segments it spans. */
interface TemplateVariable {
  fieldPath: string;
  start: number;
  /** Exclusive end index into `segments`. */
  end: number;
}

/** A parsed `google.api.http` path template. */
export interface PathTemplate {
  source: string;
  segments: TemplateSegment[];
  variables: TemplateVariable[];
  verb?: string;
}

/**
 * Parses a `google.api.http` path template (google/api/http.proto):
 * `Template = "/" Segments [ ":" Verb ]`, a segment being a literal, `*`, `**`
 * or a variable `{field.path}` / `{field.path=Segments}`. `{var}` means
 * `{var=*}`; `**` may only end the path. Throws (as INTERNAL, since templates
 * come from our own descriptors) on a malformed template.
 */
export function parsePathTemplate(source: string): PathTemplate {
  const fail = (why: string): never => {
    throw new EmbedderError("INTERNAL", `invalid path template ${source}: ${why}`);
  };
  if (!source.startsWith("/")) fail("it must start with /");
  let rest = source.slice(1);
  let verb: string | undefined;
  const verbAt = rest.lastIndexOf(":");
  if (verbAt !== -1 && verbAt > rest.lastIndexOf("}") && verbAt > rest.lastIndexOf("/")) {
    verb = rest.slice(verbAt + 1);
    rest = rest.slice(0, verbAt);
  }
  const segments: TemplateSegment[] = [];
  const variables: TemplateVariable[] = [];
  const parseSegment = (text: string): TemplateSegment => {
    if (text === "*") return { kind: "one" };
    if (text === "**") return { kind: "rest" };
    if (text === "" || /[{}=*]/.test(text)) fail(`bad segment "${text}"`);
    return { kind: "literal", text };
  };
  for (const part of splitOutsideBraces(rest, fail)) {
    if (!part.startsWith("{")) {
      segments.push(parseSegment(part));
      continue;
    }
    if (!part.endsWith("}")) fail(`unclosed variable "${part}"`);
    const [fieldPath, pattern = "*"] = part.slice(1, -1).split("=", 2);
    if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(fieldPath)) fail(`bad field path "${fieldPath}"`);
    const start = segments.length;
    for (const text of pattern.split("/")) segments.push(parseSegment(text));
    variables.push({ fieldPath, start, end: segments.length });
  }
  const restAt = segments.findIndex((segment) => segment.kind === "rest");
  if (restAt !== -1 && restAt !== segments.length - 1) fail("** must be the last segment");
  return { source, segments, variables, verb };
}

/** Splits on "/" except inside `{...}`, where a variable's own segments live. */
function splitOutsideBraces(text: string, fail: (why: string) => never): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = "";
  for (const char of text) {
    if (char === "{") depth += 1;
    if (char === "}") depth -= 1;
    if (depth < 0 || depth > 1) fail("unbalanced braces");
    if (char === "/" && depth === 0) {
      parts.push(current);
      current = "";
    } else {
      current += char;
    }
  }
  if (depth !== 0) fail("unbalanced braces");
  parts.push(current);
  return parts;
}

/**
 * Matches a raw (still percent-encoded) URL path against a template and
 * returns the variable bindings by field path, or undefined when it does not
 * match. Decoding follows google.api.http: a single-segment variable is fully
 * percent-decoded (so `%2F` becomes "/", which is how a model id such as
 * `org/name` travels in one segment); a multi-segment variable (`{name=**}`,
 * `{name=models/*}`) keeps `%2F` encoded and decodes everything else. Literal
 * segments compare after decoding. A path with broken percent-encoding
 * matches nothing.
 */
export function matchPathTemplate(template: PathTemplate, path: string): Record<string, string> | undefined {
  if (!path.startsWith("/")) return undefined;
  let rawPath = path.slice(1);
  if (template.verb !== undefined) {
    if (!rawPath.endsWith(`:${template.verb}`)) return undefined;
    rawPath = rawPath.slice(0, -(template.verb.length + 1));
  }
  const rawSegments = rawPath.split("/");
  const { segments } = template;
  const endsWithRest = segments.at(-1)?.kind === "rest";
  const fixed = endsWithRest ? segments.length - 1 : segments.length;
  if (endsWithRest ? rawSegments.length < fixed : rawSegments.length !== fixed) return undefined;
  try {
    for (let index = 0; index < fixed; index += 1) {
      const segment = segments[index];
      const raw = rawSegments[index];
      if (segment.kind === "literal" && decodeURIComponent(raw) !== segment.text) return undefined;
      if (segment.kind === "one" && raw === "") return undefined;
    }
    const bindings: Record<string, string> = {};
    for (const variable of template.variables) {
      const spansRest = variable.end === segments.length && endsWithRest;
      const raw = rawSegments.slice(variable.start, spansRest ? undefined : variable.end);
      const single = variable.end - variable.start === 1 && segments[variable.start].kind === "one";
      bindings[variable.fieldPath] = single ? decodeURIComponent(raw[0]) : decodeKeepingSlashes(raw.join("/"));
    }
    return bindings;
  } catch (error) {
    if (error instanceof URIError) return undefined;
    throw error;
  }
}

function decodeKeepingSlashes(text: string): string {
  return text
    .split(/(%2F)/i)
    .map((piece) => (/^%2F$/i.test(piece) ? piece : decodeURIComponent(piece)))
    .join("");
}
