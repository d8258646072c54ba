/** A JSON object (not an array, not null): what pass.json and its dictionaries are. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
