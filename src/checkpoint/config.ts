// config.json as transformers reads and writes it: what we copy keeps its JSON spelling
// (a number is written back as the text it was read as: 500000.0, 1e-05), what we add
// is typed as transformers' classes check it (floats as floats: 6.0, not 6), and the
// file is laid out as PretrainedConfig.to_json_string does (indent 2, sorted keys).
import { join } from 'node:path';
import { BnbError } from '../errors.js';
import { FloatDType } from '../dtypes.js';
import { JsonValue, parseJson, toPlain } from '../io/json.js';
import { readSmallFile, writeTextFile } from '../io/files.js';
import { PyFloat, PyJson, pyJsonDumps } from '../pyjson.js';

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
  return `${pyJsonDumps(tree, { indent: 2, sortKeys: true })}\n`;
}

export async function writeConfig(dir: string, tree: Map<string, PyJson>): Promise<void> {
  await writeTextFile(join(dir, 'config.json'), configText(tree));
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
export function bitsAndBytesConfig(o: BitsAndBytesConfigOptions): Map<string, PyJson> {
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
    ['llm_int8_skip_modules', o.skip],
    ['llm_int8_threshold', new PyFloat(6)],
    ['load_in_4bit', four],
    ['load_in_8bit', !four],
    ['quant_method', 'bitsandbytes'],
  ]);
}
