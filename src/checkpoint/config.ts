// config.json as transformers reads and writes it: what we copy keeps its JSON spelling
// (a number is written back as the text it was read as: 500000.0, 1e-05), what we add
// is typed as transformers' classes check it (floats as floats: 6.0, not 6), and the
// file is laid out as PretrainedConfig.to_json_string does (indent 2, sorted keys).
import { join } from 'node:path';
import { BnbError, fail } from '../errors.js';
import { guard, isInstance, isPlainObject, readOptions } from '../args.js';
import { FloatDType } from '../dtypes.js';
import { JsonValue, parseJson, toPlain } from '../json/parse.js';
import { readSmallFile, writeTextFile } from '../io/files.js';
import { JsonNumber, PyFloat, PyJson, pyJsonDumps } from '../json/dumps.js';

/** Real config.json files are a few KB; a larger one is not read into memory. */
export const MAX_CONFIG_BYTES = 16 << 20;

export interface ModelConfig {
  /** the document as read: key order and number lexemes kept */
  tree: Map<string, JsonValue>;
  /** the same as plain JavaScript, for reading fields */
  plain: Record<string, unknown>;
}

/** The folder's config.json (a JSON object, read as Python's json.loads reads it), or null if there is none. */
export async function readConfig(dir: string): Promise<ModelConfig | null> {
  const path = join(dir, 'config.json');
  const bytes = await readSmallFile(path, MAX_CONFIG_BYTES, 'E_CKPT_FORMAT', 'a config.json');
  if (bytes === null) return null;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new BnbError('E_CKPT_FORMAT', `${path} is not valid UTF-8: expected a JSON object`);
  }
  const tree = parseJson(text, { code: 'E_CKPT_FORMAT', what: path, expected: 'a JSON object', duplicates: 'last', python: true });
  if (!(tree instanceof Map)) {
    throw new BnbError('E_CKPT_FORMAT', `${path} holds ${JSON.stringify(toPlain(tree))?.slice(0, 40)}: expected a JSON object`);
  }
  return { tree, plain: toPlain(tree) as Record<string, unknown> };
}

/** config.json's text for `tree`, byte for byte as transformers writes it. */
export function configText(tree: Map<string, PyJson>): string {
  if (!isInstance(tree, Map)) fail('E_ARGUMENT', 'tree', tree, 'a Map of config.json keys to JSON values');
  return dumpConfig(readPyJson('tree', tree, 0) as Map<string, PyJson>);
}

function dumpConfig(tree: Map<string, PyJson>): string {
  return `${pyJsonDumps(tree, { indent: 2, sortKeys: true })}\n`;
}

const PY_JSON = 'JSON values: null, booleans, strings, safe integers, PyFloat, JsonNumber, arrays, Maps or objects (nesting depth 128)';

/** A caller's JSON tree, copied and checked (each value read once; no cycles: depth at most 128). */
function readPyJson(argument: string, x: unknown, depth: number): PyJson {
  if (depth > 128) fail('E_ARGUMENT', argument, x, PY_JSON);
  if (x === null || typeof x === 'boolean' || typeof x === 'string') return x;
  if (typeof x === 'number') {
    if (!Number.isSafeInteger(x)) fail('E_ARGUMENT', argument, x, `${PY_JSON} (a float as a PyFloat)`);
    return x;
  }
  if (isInstance(x, PyFloat)) {
    const v = guard(argument, () => (x as PyFloat).value as unknown);
    if (typeof v !== 'number') fail('E_ARGUMENT', `${argument}.value`, v, 'a number');
    return new PyFloat(v);
  }
  if (isInstance(x, JsonNumber)) {
    const t = guard(argument, () => (x as JsonNumber).text as unknown);
    if (typeof t !== 'string' || !/^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$|^(?:NaN|-?Infinity)$/.test(t))
      fail('E_ARGUMENT', `${argument}.text`, t, 'a JSON number lexeme');
    return new JsonNumber(t);
  }
  if (typeof x !== 'object') fail('E_ARGUMENT', argument, x, PY_JSON);
  if (guard(argument, () => Array.isArray(x))) {
    const items = guard(argument, () => [...(x as unknown[])]);
    return items.map((e, i) => readPyJson(`${argument}[${i}]`, e, depth + 1));
  }
  const entries = guard(argument, () => [...(isInstance(x, Map) ? (x as Map<unknown, unknown>).entries() : Object.entries(x))]);
  const out = new Map<string, PyJson>();
  for (const [k, v] of entries) {
    if (typeof k !== 'string') fail('E_ARGUMENT', `${argument} key`, k, 'a string');
    out.set(k, readPyJson(`${argument}[${JSON.stringify(k)}]`, v, depth + 1));
  }
  return out;
}

export async function writeConfig(dir: string, tree: Map<string, PyJson>): Promise<void> {
  await writeTextFile(join(dir, 'config.json'), dumpConfig(tree));
}

/** The model's dtype from config.json (`dtype`, or `torch_dtype` before transformers 4.56), if it is a float dtype. */
export function modelDType(config: ModelConfig | null): FloatDType | undefined {
  const d = config?.plain.dtype ?? config?.plain.torch_dtype;
  return d === 'float32' || d === 'float16' || d === 'bfloat16' ? d : undefined;
}

export interface BitsAndBytesConfigOptions {
  format: 'nf4' | 'fp4' | 'int8';
  doubleQuant: boolean;
  storage: string;
  computeDType: FloatDType;
  /** modules left unquantized, or null */
  skip: string[] | null;
}

/**
 * transformers' BitsAndBytesConfig(...).to_dict() for these settings, each value of the
 * type its post_init checks (llm_int8_threshold a float, flags booleans, dtypes as
 * strings, llm_int8_skip_modules a list or None).
 */
export function bitsAndBytesConfig(given: BitsAndBytesConfigOptions): Map<string, PyJson> {
  if (!isPlainObject('options', given)) fail('E_ARGUMENT', 'options', given, '{ format, doubleQuant, storage, computeDType, skip }');
  const o = readOptions('bitsAndBytesConfig', given, [
    'format',
    'doubleQuant',
    'storage',
    'computeDType',
    'skip',
  ]) as unknown as BitsAndBytesConfigOptions;
  if (o.format !== 'nf4' && o.format !== 'fp4' && o.format !== 'int8') fail('E_ARGUMENT', 'format', o.format, "'nf4', 'fp4' or 'int8'");
  if (typeof o.doubleQuant !== 'boolean') fail('E_ARGUMENT', 'doubleQuant', o.doubleQuant, 'true or false');
  if (!(['uint8', 'float16', 'bfloat16', 'float32'] as unknown[]).includes(o.storage))
    fail('E_DTYPE', 'storage', o.storage, 'uint8, float16, bfloat16 or float32');
  if (!(['float32', 'float16', 'bfloat16'] as unknown[]).includes(o.computeDType))
    fail('E_DTYPE', 'computeDType', o.computeDType, 'float32, float16 or bfloat16');
  const skip =
    o.skip === null
      ? null
      : guard('skip', () => (Array.isArray(o.skip) && o.skip.every((m) => typeof m === 'string') ? [...o.skip] : undefined));
  if (skip === undefined) fail('E_ARGUMENT', 'skip', o.skip, 'null or an array of module names');
  const four = o.format !== 'int8';
  return new Map<string, PyJson>([
    ['_load_in_4bit', four],
    ['_load_in_8bit', !four],
    ['bnb_4bit_compute_dtype', o.computeDType],
    ['bnb_4bit_quant_storage', o.storage],
    ['bnb_4bit_quant_type', four ? o.format : 'fp4'],
    ['bnb_4bit_use_double_quant', four && o.doubleQuant],
    ['llm_int8_enable_fp32_cpu_offload', false],
    ['llm_int8_has_fp16_weight', false],
    ['llm_int8_skip_modules', skip],
    ['llm_int8_threshold', new PyFloat(6)],
    ['load_in_4bit', four],
    ['load_in_8bit', !four],
    ['quant_method', 'bitsandbytes'],
  ]);
}
