#!/usr/bin/env python3
"""The real-client check (issue #14): transformers + bitsandbytes load what bnbjs writes,
and bnbjs reads what they write, on a randomly initialised Llama-shaped model.

For each format it
  1. runs `bnbjs quantize` on the bf16 folder;
  2. has transformers quantize the same folder in flight (BitsAndBytesConfig) and save_pretrained it;
  3. compares the two folders tensor by tensor, byte for byte (and their quantization_config);
  4. loads the bnbjs folder with AutoModelForCausalLM.from_pretrained and compares its logits
     with the in-flight model's (and with transformers' own folder reloaded);
  5. runs `bnbjs dequantize` on transformers' folder and compares every layer with
     bitsandbytes' dequantize_4bit (CB * SCB / 127 for LLM.int8), byte for byte.
Then the same with BNBJS_BACKEND=cuda for one format, and with sharded outputs.
Run by scripts/device-transformers.sh; writes $OUT/transformers.md and $OUT/transformers.json.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import time
import traceback

import torch
import bitsandbytes as bnb
import bitsandbytes.functional as F
import transformers
from safetensors import safe_open
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig

ap = argparse.ArgumentParser()
ap.add_argument('--out', required=True)
ap.add_argument('--work', default='/tmp/bnbjs-tf')
ap.add_argument('--node', default='node')
ap.add_argument('--cuda', action='store_true', help='also run bnbjs through its CUDA backend')
ap.add_argument('--no-shards', action='store_true', help='skip the sharded-output checks (a short device budget)')
args = ap.parse_args()
os.makedirs(args.work, exist_ok=True)
CLI = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'dist', 'cli.js')
DEV = 'cuda:0'
log_lines = []


def log(*parts):
    line = ' '.join(str(p) for p in parts)
    print(line, flush=True)
    log_lines.append(line)


def bnbjs(*cli_args, env=None):
    t = time.perf_counter()
    r = subprocess.run([args.node, CLI, *cli_args, '--json'], capture_output=True, text=True,
                       env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f'bnbjs {" ".join(cli_args)} exited {r.returncode}: {r.stderr[-2000:]} {r.stdout[-2000:]}')
    return json.loads(r.stdout), seconds


def load_folder(path):
    """Every tensor of a folder (single or sharded), and which file holds it."""
    index = os.path.join(path, 'model.safetensors.index.json')
    files = sorted(set(json.load(open(index))['weight_map'].values())) if os.path.exists(index) else ['model.safetensors']
    tensors, where = {}, {}
    for f in files:
        with safe_open(os.path.join(path, f), framework='pt') as s:
            for k in s.keys():
                tensors[k] = s.get_tensor(k)
                where[k] = f
    return tensors, where, files


def raw(t):
    return t.contiguous().reshape(-1).view(torch.uint8)


def same_bytes(a, b):
    return a.dtype == b.dtype and list(a.shape) == list(b.shape) and torch.equal(raw(a), raw(b))


def quant_state_json(t):
    return json.loads(bytes(t.tolist()).decode())


def ulps(a, b):
    ia, ib = struct.unpack('<i', struct.pack('<f', a))[0], struct.unpack('<i', struct.pack('<f', b))[0]
    return abs(ia - ib)


def compare_folders(ours_dir, theirs_dir):
    """Tensor-by-tensor byte comparison, with every difference explained where it can be."""
    ours, _, _ = load_folder(ours_dir)
    theirs, _, _ = load_folder(theirs_dir)
    rows = {'tensors': len(theirs), 'identical': 0, 'differences': [], 'only_ours': sorted(set(ours) - set(theirs)),
            'only_theirs': sorted(set(theirs) - set(ours))}
    offsets, offset_values = {}, {}
    for k in sorted(set(ours) & set(theirs)):
        a, b = ours[k], theirs[k]
        if same_bytes(a, b):
            rows['identical'] += 1
            continue
        d = {'tensor': k, 'ours': f'{a.dtype} {list(a.shape)}', 'theirs': f'{b.dtype} {list(b.shape)}'}
        if a.dtype == b.dtype and a.shape == b.shape:
            d['differing_bytes'] = int((raw(a) != raw(b)).sum())
            d['elements'] = a.numel()
        if '.quant_state.' in k:
            ja, jb = quant_state_json(a), quant_state_json(b)
            diff = {f: (ja.get(f), jb.get(f)) for f in set(ja) | set(jb) if ja.get(f) != jb.get(f)}
            d['fields'] = diff
            if set(diff) == {'nested_offset'}:
                n = ulps(ja['nested_offset'], jb['nested_offset'])
                offsets[k.split('.weight.')[0]] = n
                offset_values[k.split('.weight.')[0]] = (ja['nested_offset'], jb['nested_offset'])
                d['explained'] = f'nested_offset {n} ulp apart: bnbjs takes the exact mean of absmax, torch a CUDA reduction order'
        rows['differences'].append(d)
    # the absmax codes and the nested absmax of a layer whose offset differs follow from that offset
    for d in rows['differences']:
        module = d['tensor'].split('.weight.')[0]
        if module not in offsets:
            continue
        if d['tensor'].endswith('.weight.absmax'):
            d['explained'] = f'absmax codes quantized against an offset {offsets[module]} ulp apart (see the quant_state)'
        elif d['tensor'].endswith('.weight.nested_absmax'):
            d['explained'] = f'max |absmax - offset| per 256 blocks, with an offset {offsets[module]} ulp apart'
    rows['offset_modules'] = {m: offset_values[m] for m in sorted(offsets)}
    return rows


def exact_mean_check(src_dir, modules):
    """For each layer whose nested offset differs: the correctly rounded mean of bitsandbytes' own
    float32 absmax (fsum) against both offsets. bnbjs promises the exact mean; torch.mean is a reduction."""
    import math
    weights, _, _ = load_folder(src_dir)
    out = {'layers': len(modules), 'exact_equals_bnbjs': 0, 'torch_mean_equals_transformers': 0}
    for module in modules:
        w = weights[f'{module}.weight'].to(DEV)
        _, st = F.quantize_4bit(w, blocksize=64, quant_type='nf4', compress_statistics=False)
        a = st.absmax.float()
        exact = struct.unpack('<f', struct.pack('<f', math.fsum(a.double().tolist()) / a.numel()))[0]
        ours_off, theirs_off = modules[module]
        torch_mean = float(a.mean())
        out['exact_equals_bnbjs'] += int(exact == ours_off)
        out['torch_mean_equals_transformers'] += int(torch_mean == theirs_off)
        out.setdefault('per_layer', []).append({'module': module, 'exact_mean': exact, 'torch_mean': torch_mean,
                                                'bnbjs': ours_off, 'transformers': theirs_off})
    return out
    return rows


def quantization_config_diff(ours_dir, theirs_dir):
    a = json.load(open(os.path.join(ours_dir, 'config.json')))
    b = json.load(open(os.path.join(theirs_dir, 'config.json')))
    qa, qb = a.get('quantization_config', {}), b.get('quantization_config', {})
    diff = {k: (qa.get(k), qb.get(k)) for k in set(qa) | set(qb) if qa.get(k) != qb.get(k) or type(qa.get(k)) is not type(qb.get(k))}
    rest = {k: (a.get(k), b.get(k)) for k in set(a) | set(b)
            if k not in ('quantization_config', 'transformers_version') and a.get(k) != b.get(k)}
    return diff, rest


@torch.no_grad()
def logits_of(model, ids):
    return model(ids).logits.float()


def compare_logits(x, y):
    return {'identical': bool(torch.equal(x, y)), 'max_abs_diff': float((x - y).abs().max())}


def reference_dequantized(model):
    """bitsandbytes' own dequantization of every quantized Linear of an in-flight model."""
    ref = {}
    for name, m in model.named_modules():
        if isinstance(m, bnb.nn.Linear4bit):
            ref[f'{name}.weight'] = F.dequantize_4bit(m.weight.data, m.weight.quant_state).cpu()
        elif isinstance(m, bnb.nn.Linear8bitLt):
            # after the first forward bitsandbytes keeps the row statistics in the layer's state
            scb = m.weight.SCB if getattr(m.weight, 'SCB', None) is not None else m.state.SCB
            ref[f'{name}.weight'] = F.int8_vectorwise_dequant(m.weight.data, scb).to(model.dtype).cpu()
    return ref


def compare_dequantized(deq_dir, ref):
    got, _, _ = load_folder(deq_dir)
    bad = [k for k in ref if not same_bytes(got[k], ref[k])]
    extra = [k for k in got if '.absmax' in k or 'quant_' in k or k.endswith('.SCB') or k.endswith('weight_format')]
    return {'layers': len(ref), 'identical': len(ref) - len(bad), 'differing': bad[:10], 'leftover_items': extra[:10]}


# the formats with extra checks (CUDA, shards) first: a run cut short still has them
FORMATS = {
    'nf4+dq': (['--format', 'nf4', '--double-quant'], dict(load_in_4bit=True, bnb_4bit_quant_type='nf4', bnb_4bit_use_double_quant=True)),
    'int8': (['--format', 'int8'], dict(load_in_8bit=True)),
    'nf4': (['--format', 'nf4'], dict(load_in_4bit=True, bnb_4bit_quant_type='nf4')),
    'fp4': (['--format', 'fp4'], dict(load_in_4bit=True, bnb_4bit_quant_type='fp4')),
    'nf4 bf16-storage': (['--format', 'nf4', '--storage', 'bfloat16'],
                         dict(load_in_4bit=True, bnb_4bit_quant_type='nf4', bnb_4bit_quant_storage=torch.bfloat16)),
}

# the nf4 model (~88 MB) needs smaller shards than 100MB to be split at all
SHARD_SIZES = {'nf4+dq': '40MB', 'int8': '100MB'}



def logits_text(c):
    return 'identical' if c['identical'] else f"max |diff| {c['max_abs_diff']:.4g}"

def write_table(results):
    """transformers.json and transformers.md so far (a run cut short keeps what it did)."""
    with open(os.path.join(args.out, 'transformers.json'), 'w') as f:
        json.dump(results, f, indent=2, default=str)
    lines = ['| format | tensors identical | differences (explained) | quantization_config | logits bnbjs vs in-flight | '
             'dequantized layers identical | extra checks |', '|---|---|---|---|---|---|---|']
    for r in results:
        if 'error' in r:
            lines.append(f"| {r['format']} | FAILED: {r['error'][-300:]} | | | | | |")
            continue
        t = r['tensors']
        explained = sum(1 for d in t['differences'] if 'explained' in d)
        extra = []
        if 'cuda_vs_wasm' in r:
            c = r['cuda_vs_wasm']
            extra.append(f"CUDA backend: {c['identical']}/{c['tensors']} tensors = WebAssembly's, dequantized "
                         f"{r['cuda_dequantized']['identical']}/{r['cuda_dequantized']['layers']}")
        if 'sharded' in r:
            s = r['sharded']
            extra.append(f"{SHARD_SIZES[r['format']]} shards: {len(s['files'])} files, {s['vs_single']['identical']}/{s['vs_single']['tensors']} = single, "
                         f"logits vs in-flight {logits_text(s['logits_vs_inflight'])}; dequantize {len(s['dequantize_files'])} shards, "
                         f"{s['dequantized']['identical']}/{s['dequantized']['layers']} identical, loads")
        if 'offset_check' in r:
            o = r['offset_check']
            extra.append(f"offsets: exact mean = bnbjs's {o['exact_equals_bnbjs']}/{o['layers']}, torch.mean = transformers' "
                         f"{o['torch_mean_equals_transformers']}/{o['layers']}")
        lo = r['logits_ours_vs_inflight']
        lines.append(f"| {r['format']} | {t['identical']}/{t['tensors']} | {len(t['differences'])} ({explained})"
                     f"{' only ours: ' + str(len(t['only_ours'])) if t['only_ours'] else ''}"
                     f"{' only theirs: ' + str(len(t['only_theirs'])) if t['only_theirs'] else ''} | "
                     f"{'same' if not r['quantization_config_diff'] else r['quantization_config_diff']} | "
                     f"{'identical' if lo['identical'] else 'max |diff| %.3g' % lo['max_abs_diff']} | "
                     f"{r['dequantized']['identical']}/{r['dequantized']['layers']} | {'; '.join(extra)} |")
    table = '\n'.join(lines)
    with open(os.path.join(args.out, 'transformers.md'), 'w') as f:
        f.write('\n'.join(log_lines) + '\n\n' + table + '\n')
    return table


def main():
    log(f'torch {torch.__version__}, transformers {transformers.__version__}, bitsandbytes {bnb.__version__}, '
        f'{torch.cuda.get_device_name(0)}')
    src = os.path.join(args.work, 'bf16')
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=1536, intermediate_size=4000, num_hidden_layers=3, num_attention_heads=12,
                         num_key_value_heads=4, head_dim=128, vocab_size=8000, max_position_embeddings=512,
                         rms_norm_eps=1e-05, tie_word_embeddings=False)
    base = AutoModelForCausalLM.from_config(config).to(torch.bfloat16)
    base.config.dtype = torch.bfloat16
    base.save_pretrained(src)
    with open(os.path.join(src, 'tokenizer_config.json'), 'w') as f:
        f.write('{"model_max_length": 512}\n')  # a companion file the output must carry
    nparams = sum(p.numel() for p in base.parameters())
    log(f'model: {nparams / 1e6:.1f} M parameters, files {sorted(os.listdir(src))}')
    del base
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 8000, (2, 24), generator=gen).to(DEV)
    results = []
    for fmt, (cli_args, bnb_kwargs) in FORMATS.items():
        slug = fmt.replace('+', '-').replace(' ', '-')
        ours, theirs, deq = (os.path.join(args.work, f'{p}-{slug}') for p in ('bnbjs', 'tf', 'deq'))
        row = {'format': fmt}
        try:
            rep, row['bnbjs_quantize_s'] = bnbjs('quantize', src, ours, *cli_args, '--force')
            qc = BitsAndBytesConfig(bnb_4bit_compute_dtype=torch.bfloat16, **bnb_kwargs) if 'load_in_4bit' in bnb_kwargs \
                else BitsAndBytesConfig(**bnb_kwargs)
            t = time.perf_counter()
            inflight = AutoModelForCausalLM.from_pretrained(src, quantization_config=qc, device_map=DEV, dtype=torch.bfloat16)
            inflight.save_pretrained(theirs)
            row['transformers_quantize_save_s'] = time.perf_counter() - t
            row['tensors'] = compare_folders(ours, theirs)
            if row['tensors'].get('offset_modules'):
                row['offset_check'] = exact_mean_check(src, row['tensors']['offset_modules'])
            row['quantization_config_diff'], row['config_diff'] = quantization_config_diff(ours, theirs)
            row['companions'] = sorted(set(os.listdir(src)) - set(os.listdir(ours)) - {'model.safetensors'})
            ref_logits = logits_of(inflight, ids)
            loaded = AutoModelForCausalLM.from_pretrained(ours, device_map=DEV, dtype=torch.bfloat16)
            ours_logits = logits_of(loaded, ids)
            row['logits_ours_vs_inflight'] = compare_logits(ours_logits, ref_logits)
            del loaded
            reloaded = AutoModelForCausalLM.from_pretrained(theirs, device_map=DEV, dtype=torch.bfloat16)
            theirs_logits = logits_of(reloaded, ids)
            row['logits_theirs_vs_inflight'] = compare_logits(theirs_logits, ref_logits)
            row['logits_ours_vs_theirs_reloaded'] = compare_logits(ours_logits, theirs_logits)
            del reloaded
            ref = reference_dequantized(inflight)
            _, row['bnbjs_dequantize_s'] = bnbjs('dequantize', theirs, deq, '--force')
            row['dequantized'] = compare_dequantized(deq, ref)
            if args.cuda and fmt == 'nf4+dq':
                cuda_q, cuda_d = ours + '-cuda', deq + '-cuda'
                _, row['cuda_quantize_s'] = bnbjs('quantize', src, cuda_q, *cli_args, '--force', env={'BNBJS_BACKEND': 'cuda'})
                row['cuda_vs_wasm'] = compare_folders(cuda_q, ours)
                _, row['cuda_dequantize_s'] = bnbjs('dequantize', theirs, cuda_d, '--force', env={'BNBJS_BACKEND': 'cuda'})
                row['cuda_dequantized'] = compare_dequantized(cuda_d, ref)
            if fmt in SHARD_SIZES and not args.no_shards:
                sharded = ours + '-sharded'
                bnbjs('quantize', src, sharded, *cli_args, '--force', '--max-shard-size', SHARD_SIZES[fmt])
                _, where, files = load_folder(sharded)
                row['sharded'] = {'files': files, 'vs_single': compare_folders(sharded, ours)}
                loaded = AutoModelForCausalLM.from_pretrained(sharded, device_map=DEV, dtype=torch.bfloat16)
                row['sharded']['logits_vs_inflight'] = compare_logits(logits_of(loaded, ids), ref_logits)
                del loaded
                deq_sharded = deq + '-sharded'
                bnbjs('dequantize', theirs, deq_sharded, '--force', '--max-shard-size', '100MB')
                _, _, dfiles = load_folder(deq_sharded)
                row['sharded']['dequantize_files'] = dfiles
                row['sharded']['dequantized'] = compare_dequantized(deq_sharded, ref)
                back = AutoModelForCausalLM.from_pretrained(deq_sharded, device_map=DEV, dtype=torch.bfloat16)
                row['sharded']['dequantized_loads'] = True
                del back
            del inflight
            torch.cuda.empty_cache()
        except Exception as e:  # recorded in the table; the other formats still run
            row['error'] = f'{type(e).__name__}: {e}'
            log(traceback.format_exc())
        results.append(row)
        log(json.dumps(row, default=str))
        write_table(results)
    print(write_table(results))


if __name__ == '__main__':
    main()

