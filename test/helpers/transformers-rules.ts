// transformers' own checks of a bitsandbytes quantization_config, on the JSON text as
// Python reads it (an integer lexeme is a Python int, not a float): the types
// BitsAndBytesConfig.__init__ and post_init enforce (transformers 5.x,
// src/transformers/utils/quantization_config.py), each broken rule one message.
import { JsonNumber, JsonValue } from '../../src/json/parse.js';

const TORCH_DTYPES = [
  'float32',
  'float',
  'float64',
  'double',
  'float16',
  'half',
  'bfloat16',
  'uint8',
  'int8',
  'int16',
  'short',
  'int32',
  'int',
  'int64',
  'long',
  'bool',
];
const QUANT_STORAGES = ['float16', 'float32', 'int8', 'uint8', 'float64', 'bfloat16'];

const isBool = (v: JsonValue | undefined) => typeof v === 'boolean';
/** Python's json.loads gives a float for a number lexeme with a fraction or exponent, and for NaN/Infinity. */
export const isPyFloat = (v: JsonValue | undefined) => v instanceof JsonNumber && /[.eE]|NaN|Infinity/.test(v.text);

export function bitsAndBytesConfigErrors(q: JsonValue | undefined): string[] {
  if (!(q instanceof Map)) return ['quantization_config must be an object'];
  const errors: string[] = [];
  const need = (ok: boolean, message: string) => void (ok || errors.push(message));
  need(q.get('quant_method') === 'bitsandbytes', 'quant_method must be "bitsandbytes"');
  for (const key of [
    'load_in_4bit',
    'load_in_8bit',
    'llm_int8_enable_fp32_cpu_offload',
    'llm_int8_has_fp16_weight',
    'bnb_4bit_use_double_quant',
  ]) {
    if (q.has(key)) need(isBool(q.get(key)), `${key} must be a boolean`);
  }
  for (const key of ['_load_in_4bit', '_load_in_8bit']) if (q.has(key)) need(isBool(q.get(key)), `${key} must be a boolean`);
  need(!(q.get('load_in_4bit') === true && q.get('load_in_8bit') === true), 'load_in_4bit and load_in_8bit are both True');
  if (q.has('llm_int8_threshold')) need(isPyFloat(q.get('llm_int8_threshold')), 'llm_int8_threshold must be a float');
  const skip = q.get('llm_int8_skip_modules');
  need(
    skip === undefined || skip === null || (Array.isArray(skip) && skip.every((s) => typeof s === 'string')),
    'llm_int8_skip_modules must be a list of strings',
  );
  const compute = q.get('bnb_4bit_compute_dtype');
  need(
    compute === undefined || compute === null || (typeof compute === 'string' && TORCH_DTYPES.includes(compute)),
    'bnb_4bit_compute_dtype must be a string or a torch.dtype',
  );
  const storage = q.get('bnb_4bit_quant_storage');
  need(
    storage === undefined || storage === null || (typeof storage === 'string' && QUANT_STORAGES.includes(storage)),
    '`bnb_4bit_quant_storage` must be a valid string',
  );
  if (q.has('bnb_4bit_quant_type')) need(typeof q.get('bnb_4bit_quant_type') === 'string', 'bnb_4bit_quant_type must be a string');
  return errors;
}
