// The README's example runs as written against the built package.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

describe('README', () => {
  it('the API example runs and prints what its comments say', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const code = /```js\n([\s\S]*?)```/.exec(readme)![1]!;
    mkdirSync(new URL('../build/', import.meta.url), { recursive: true });
    const file = new URL('../build/readme-example.mjs', import.meta.url);
    writeFileSync(file, code);
    const out = execFileSync(process.execPath, [file.pathname], { encoding: 'utf8' });
    expect(out).toContain('uint8 [ 64, 1 ]');
    expect(out).toContain('absmax, quant_map, nested_absmax, nested_quant_map, quant_state.bitsandbytes__nf4');
    expect(out).toMatch(/\{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": \[2, 64\], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": [0-9.e-]+\}/);
    expect(out).toContain('float32 [ 2, 64 ] true');
  });

  it('the quick start names the scripts that exist', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    expect(pkg.scripts.demo).toBeDefined();
    expect(pkg.scripts.test).toContain('vitest run');
    expect(pkg.scripts).not.toHaveProperty('install');
    expect(pkg.scripts).not.toHaveProperty('postinstall');
  });
});
