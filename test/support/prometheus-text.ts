/** Prometheus text exposition as a map from `name{labels}` (labels sorted) to value. */
export function parseMetrics(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) continue;
    const labels = (match[2] ?? "").match(/\w+="(?:[^"\\]|\\.)*"/g) ?? [];
    series.set(`${match[1]}{${labels.sort().join(",")}}`, Number(match[3]));
  }
  return series;
}

/** The key `parseMetrics` files a series under. */
export const metricKey = (name: string, labels: Record<string, string> = {}) =>
  `${name}{${Object.entries(labels).map(([label, value]) => `${label}="${value}"`).sort().join(",")}}`;
