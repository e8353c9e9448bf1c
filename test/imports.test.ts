// The module graph of src/, read with the TypeScript compiler API: imports only go
// downward through the layers declared below, there is no cycle, every module is named
// by a string literal, and a backend's files are imported only by their own backend and
// the entries (plus the few known crossings listed, each with its reason).
// Type-only imports count as edges: they erase at run time, but they still tie one
// module's meaning to another's, and a layer that needs a higher layer's types is upside down.
import { describe, expect, it } from 'vitest';
import ts from 'typescript';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const SRC = join(ROOT, 'src');

/**
 * The layers, lowest first; each names the layers its files may import (its own always
 * included). Backends sit beside io, checkpoint and cli, not under them: code above ops
 * reaches kernels through the op registry, and only the entries pick backends.
 */
const LAYERS = {
  base: [],
  model: ['base'],
  ops: ['base', 'model'],
  backend: ['base', 'model', 'ops'],
  io: ['base', 'model'],
  checkpoint: ['base', 'model', 'ops', 'io'],
  cli: ['base', 'model', 'ops', 'io', 'checkpoint'],
  entry: ['base', 'model', 'ops', 'backend', 'io', 'checkpoint', 'cli'],
} as const satisfies Record<string, readonly string[]>;
type Layer = keyof typeof LAYERS;

/** Path (relative to src/, without .ts/.d.ts) → layer; a folder entry ends with '/'. First match wins. */
const LAYER_OF: [string, Layer][] = [
  ['errors', 'base'],
  ['float16', 'base'],
  ['stats', 'base'],
  ['normal-ppf', 'base'],
  ['runtime/', 'base'],
  ['json/', 'base'],
  ['dtypes', 'base'],
  ['args', 'base'],
  ['views', 'base'],
  ['checks', 'base'],
  ['devices', 'base'],
  ['tensor', 'model'],
  ['scalars', 'model'],
  ['maps', 'model'],
  ['quant-state', 'model'],
  ['ops/', 'ops'],
  ['axolotl', 'ops'],
  ['backend/', 'backend'],
  ['io/', 'io'],
  ['checkpoint/', 'checkpoint'],
  ['cli/', 'cli'],
  ['core', 'entry'],
  ['index', 'entry'],
  ['node', 'entry'],
  ['browser', 'entry'],
  ['worker', 'entry'],
  ['inline', 'entry'],
  ['cli', 'entry'],
];

/** Files outside src/backend/ that may reach into a backend besides the entries. */
const BACKEND_DOORS = ['backend/probe'];
/** What a backend folder may import from src/backend/ outside itself. */
const BACKEND_SHARED = ['backend/abi'];

/**
 * Known edges against the rules, each with why it stands; the test fails if one
 * disappears, so that the list only shrinks.
 */
const KNOWN: Record<string, string> = {
  'backend/cuda/int8 -> backend/wasm/int8':
    'outlier columns (threshold > 0) computed on the host by the WebAssembly kernel; the registry would send a forced-CUDA host tensor back to CUDA',
  'backend/hpu/backend -> backend/wasm/quant4bit': 'the Gaudi backend dequantizes on the host with the WebAssembly kernel',
  'backend/hpu/backend -> backend/wasm/blockwise': 'the Gaudi backend reads (nested) absmax on the host with the WebAssembly kernel',
  'checkpoint/quantize -> backend/wasm/int8-cast': 'the fused float→int8 cast runs in wasm memory, chunk by chunk (no whole float16 copy)',
  'checkpoint/dequantize -> backend/wasm/int8-cast': 'the fused int8→float cast runs in wasm memory, chunk by chunk',
};

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? tsFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** a module's name: its path under src/ without .ts / .d.ts */
const nameOf = (file: string) =>
  relative(SRC, file)
    .replace(/\\/g, '/')
    .replace(/(\.d)?\.ts$/, '');

function layerOf(name: string): Layer | undefined {
  return LAYER_OF.find(([p]) => (p.endsWith('/') ? name.startsWith(p) : name === p))?.[1];
}

interface Edge {
  from: string;
  to: string;
  spec: string;
  line: number;
  typeOnly: boolean;
}
interface Graph {
  edges: Edge[];
  problems: string[];
}

/** The edges of one source text; `file` is its path, for resolving and for messages. */
function edgesOf(file: string, text: string): Graph {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const from = nameOf(file);
  const edges: Edge[] = [];
  const problems: string[] = [];
  const where = (n: ts.Node) => `${from}.ts:${sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1}`;
  const add = (n: ts.Node, spec: string, typeOnly: boolean) => {
    const line = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1;
    if (!spec.startsWith('.')) {
      if (!spec.startsWith('node:')) problems.push(`${where(n)}: imports '${spec}': src/ imports only node: built-ins and its own files`);
      return;
    }
    const target = resolveSpec(file, spec);
    if (target === null) {
      problems.push(`${where(n)}: imports '${spec}', which resolves to no file`);
      return;
    }
    if (target === 'asset') return; // the .wasm builds, outside src/
    edges.push({ from, to: target, spec, line, typeOnly });
  };
  const literal = (n: ts.Expression | undefined) => (n && ts.isStringLiteralLike(n) ? n.text : null);
  const visit = (n: ts.Node): void => {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier) {
      const typeOnly = ts.isImportDeclaration(n) ? !!n.importClause?.isTypeOnly : n.isTypeOnly;
      add(n, (n.moduleSpecifier as ts.StringLiteral).text, typeOnly);
    } else if (ts.isImportEqualsDeclaration(n) && ts.isExternalModuleReference(n.moduleReference)) {
      const s = literal(n.moduleReference.expression);
      if (s === null) problems.push(`${where(n)}: import = require(...) of a computed name`);
      else add(n, s, n.isTypeOnly);
    } else if (ts.isImportTypeNode(n)) {
      const arg = n.argument;
      if (ts.isLiteralTypeNode(arg) && ts.isStringLiteral(arg.literal)) add(n, arg.literal.text, true);
      else problems.push(`${where(n)}: import type of a computed name`);
    } else if (ts.isCallExpression(n)) {
      const callee = n.expression;
      const name =
        callee.kind === ts.SyntaxKind.ImportKeyword
          ? 'import'
          : ts.isIdentifier(callee) && ['require', 'nodeBuiltin'].includes(callee.text)
            ? callee.text
            : null;
      if (name !== null) {
        const s = literal(n.arguments[0]);
        if (s === null)
          problems.push(
            `${where(n)}: ${name}(${n.arguments[0]?.getText(sf) ?? ''}) loads a module by a computed name: use a string literal`,
          );
        else add(n, s, false);
      }
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return { edges, problems };
}

/** './x.js' from file → the module name of x.ts / x.d.ts / x/index.ts under src/; 'asset' outside src/; null if none. */
function resolveSpec(file: string, spec: string): string | 'asset' | null {
  const abs = resolve(dirname(file), spec);
  if (relative(SRC, abs).startsWith('..')) return existsSync(abs) || !abs.endsWith('.ts') ? 'asset' : null;
  const base = abs.replace(/\.js$/, '');
  for (const c of [`${base}.ts`, `${base}.d.ts`, join(base, 'index.ts')]) if (existsSync(c)) return nameOf(c);
  return null;
}

/** Every rule broken by these edges, one line each naming the file, the line and the import. */
function violations(edges: Edge[], known: Record<string, string>): string[] {
  const out: string[] = [];
  for (const e of edges) {
    const key = `${e.from} -> ${e.to}`;
    const at = `${e.from}.ts:${e.line} imports '${e.spec}' (${e.to})`;
    const lf = layerOf(e.from);
    const lt = layerOf(e.to);
    if (lf === undefined) {
      out.push(`${e.from}.ts: in no layer: add it to LAYER_OF in test/imports.test.ts`);
      continue;
    }
    if (lt === undefined) {
      out.push(`${at}: the target is in no layer`);
      continue;
    }
    if (key in known) continue;
    if (lf !== lt && !(LAYERS[lf] as readonly string[]).includes(lt)) {
      out.push(`${at}: upward or sideways, layer ${lf} may import only ${[lf, ...LAYERS[lf]].join(', ')}, not ${lt}`);
      continue;
    }
    // Backend internals: a backend's folder is its own; others reach it only from the entries or the probe.
    const folder = (n: string) => /^backend\/([^/]+)\//.exec(n)?.[1] ?? null;
    const into = folder(e.to);
    if (into !== null && folder(e.from) !== into && layerOf(e.from) !== 'entry' && !BACKEND_DOORS.includes(e.from)) {
      out.push(`${at}: reaches into backend '${into}' from outside it (only the entries and ${BACKEND_DOORS.join(', ')} may)`);
    } else if (e.to.startsWith('backend/') && into === null && folder(e.from) !== null && !BACKEND_SHARED.includes(e.to)) {
      out.push(`${at}: a backend imports from src/backend/ only ${BACKEND_SHARED.join(', ')}`);
    }
  }
  return out;
}

/** A cycle of the graph as 'a -> b -> ... -> a', or null. */
function findCycle(edges: Edge[]): string | null {
  const next = new Map<string, string[]>();
  for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  const state = new Map<string, 1 | 2>(); // 1 on the path, 2 done
  const path: string[] = [];
  const dfs = (n: string): string | null => {
    state.set(n, 1);
    path.push(n);
    for (const m of next.get(n) ?? []) {
      if (state.get(m) === 1) return [...path.slice(path.indexOf(m)), m].join(' -> ');
      if (state.get(m) === undefined) {
        const c = dfs(m);
        if (c !== null) return c;
      }
    }
    path.pop();
    state.set(n, 2);
    return null;
  };
  for (const n of [...next.keys()].sort()) {
    if (state.get(n) === undefined) {
      const c = dfs(n);
      if (c !== null) return c;
    }
  }
  return null;
}

function graphOfSrc(): Graph {
  const all = tsFiles(SRC)
    .sort()
    .map((f) => edgesOf(f, readFileSync(f, 'utf8')));
  return { edges: all.flatMap((g) => g.edges), problems: all.flatMap((g) => g.problems) };
}

describe('the module graph of src/', () => {
  const { edges, problems } = graphOfSrc();

  it('is read: every module resolves, and names its imports with string literals', () => {
    expect(edges.length).toBeGreaterThan(300);
    expect(problems).toEqual([]);
  });

  it('has no cycle', () => {
    expect(findCycle(edges)).toBeNull();
  });

  it('imports only downward, and reaches into a backend only from the entries', () => {
    expect(violations(edges, KNOWN)).toEqual([]);
  });

  it('still has every known crossing (remove one from KNOWN once it is gone)', () => {
    const present = new Set(edges.map((e) => `${e.from} -> ${e.to}`));
    expect(Object.keys(KNOWN).filter((k) => !present.has(k))).toEqual([]);
  });

  it('every src file is in a layer', () => {
    expect(
      tsFiles(SRC)
        .map(nameOf)
        .filter((n) => layerOf(n) === undefined),
    ).toEqual([]);
  });
});

describe('the checks catch what they are for', () => {
  const at = (name: string) => join(SRC, `${name}.ts`);

  it('an upward import, naming the file and the import', () => {
    const { edges } = edgesOf(at('ops/blockwise'), "import { wasm } from '../backend/wasm/runtime/instances.js';\n");
    expect(violations(edges, {})).toEqual([
      "ops/blockwise.ts:1 imports '../backend/wasm/runtime/instances.js' (backend/wasm/runtime/instances): upward or sideways, layer ops may import only ops, base, model, not backend",
    ]);
    // a type-only import counts as well
    const t = edgesOf(at('tensor'), "import type { Op } from './ops/registry.js';\n");
    expect(violations(t.edges, {})).toEqual([
      "tensor.ts:1 imports './ops/registry.js' (ops/registry): upward or sideways, layer model may import only model, base, not ops",
    ]);
  });

  it('one backend reaching into another, and checkpoint code reaching into a backend', () => {
    const a = edgesOf(at('backend/cuda/fp8'), "import { dequantizeFp8Wasm } from '../wasm/fp8.js';\n");
    expect(violations(a.edges, {})).toEqual([
      "backend/cuda/fp8.ts:1 imports '../wasm/fp8.js' (backend/wasm/fp8): reaches into backend 'wasm' from outside it (only the entries and backend/probe may)",
    ]);
    const b = edgesOf(at('backend/cuda/fp8'), "import { probeBackends } from '../probe.js';\n");
    expect(violations(b.edges, {})).toEqual([
      "backend/cuda/fp8.ts:1 imports '../probe.js' (backend/probe): a backend imports from src/backend/ only backend/abi",
    ]);
    const c = edgesOf(
      at('checkpoint/layers'),
      "export { registerBackend } from '../ops/registry.js';\nimport '../backend/wasm/index.js';\n",
    );
    expect(violations(c.edges, {})).toEqual([
      "checkpoint/layers.ts:2 imports '../backend/wasm/index.js' (backend/wasm/index): upward or sideways, layer checkpoint may import only checkpoint, base, model, ops, io, not backend",
    ]);
  });

  it('a cycle, with its path', () => {
    const g = [
      edgesOf(at('errors'), "import './dtypes.js';\n"),
      edgesOf(at('dtypes'), "import './args.js';\n"),
      edgesOf(at('args'), "import type { X } from './errors.js';\n"),
    ];
    expect(findCycle(g.flatMap((x) => x.edges))).toBe('args -> errors -> dtypes -> args');
  });

  it('a module loaded by a computed name, a package, a missing file', () => {
    const { problems } = edgesOf(
      at('io/files'),
      [
        'const m = await import(name);',
        "const n = nodeBuiltin<T>('node:' + x);",
        "import x from 'lodash';",
        "import y from './nowhere.js';",
        "const ok = await import('node:fs');",
      ].join('\n'),
    );
    expect(problems).toEqual([
      'io/files.ts:1: import(name) loads a module by a computed name: use a string literal',
      "io/files.ts:2: nodeBuiltin('node:' + x) loads a module by a computed name: use a string literal",
      "io/files.ts:3: imports 'lodash': src/ imports only node: built-ins and its own files",
      "io/files.ts:4: imports './nowhere.js', which resolves to no file",
    ]);
  });
});
