// The one value type the JSON reader (./parse.ts) and writer (./dumps.ts) share.

/** A number kept as the text it was read as (`500000.0`, `1e-05`), written back unchanged. */
export class JsonNumber {
  constructor(readonly text: string) {}
}
