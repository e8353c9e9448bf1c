// Detecting Intel Gaudi the way the Habana stack exposes it, and its software
// version (which decides the nibble order its dequantize_nf4 expects).
import { fail } from '../../errors.js';
import { guard, isPlainObject, readOptions, readString } from '../../args.js';
import { nodeBuiltin } from '../../runtime/node-builtins.js';

/** An array of strings, copied. */
function readStrings(argument: string, x: unknown): string[] {
  const out = guard(argument, () => (Array.isArray(x) && x.every((s) => typeof s === 'string') ? ([...x] as string[]) : null));
  if (out === null) fail('E_ARGUMENT', argument, x, 'an array of directory paths');
  return out;
}

export interface GaudiVersion {
  major: number;
  minor: number;
  patch: number;
  text: string;
}

export interface GaudiProbe {
  /** a Gaudi device was found (or BNBJS_BACKEND=hpu forces the backend) */
  available: boolean;
  reason: string | null;
  /** accel device nodes found (/dev/accel/accel*, /dev/hl*) */
  devices: string[];
  visibleDevices: string | null;
  version: GaudiVersion | null;
  /** where the version came from, or why it is unknown */
  versionSource: string;
  /** bnb swaps nibbles for software older than 1.22 */
  swapNibbles: boolean;
  /** the HPU backend computes on the WebAssembly kernels: no native binding exists yet */
  emulated: true;
}

/** Parses Habana version strings: "hl-1.21.0-fw-...", "1.22.0", "Version: 2.0.0". */
export function parseGaudiVersion(text: string): GaudiVersion | null {
  if (typeof text !== 'string') fail('E_ARGUMENT', 'text', text, 'a version string such as "1.22.0" or hl-smi\'s output');
  const m =
    /hl-(\d+)\.(\d+)\.(\d+)/.exec(text) ?? /(?:^|[^\d.])(\d+)\.(\d+)\.(\d+)/.exec(text) ?? /(?:^|[^\d.])(\d+)\.(\d+)(?![\d.])/.exec(text);
  if (!m) return null;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0), text: text.trim().split('\n')[0]!.slice(0, 200) };
}

/**
 * (major, minor) < (1, 22): software that expects the first element in the low
 * nibble. bitsandbytes writes `major < 1 or minor < 22`, which also fires for 2.0-2.21.
 */
export function needsNibbleSwap(v: GaudiVersion | null): boolean {
  if (v === null) return false;
  const { major, minor } = isPlainObject('v', v)
    ? guard('v', () => ({ major: v.major as unknown, minor: v.minor as unknown }))
    : { major: undefined, minor: undefined };
  if (!Number.isSafeInteger(major) || !Number.isSafeInteger(minor))
    fail('E_ARGUMENT', 'v', v, 'null or a GaudiVersion { major, minor, patch } (see parseGaudiVersion)');
  return (major as number) < 1 || (major === 1 && (minor as number) < 22);
}

export interface GaudiProbeOptions {
  env?: Record<string, string | undefined>;
  /** directories searched for habana_torch_plugin-*.dist-info (default: the usual site-packages) */
  sitePackages?: string[];
  devRoot?: string;
}

export function probeGaudi(given: GaudiProbeOptions = {}): GaudiProbe {
  const opts = readOptions('probeGaudi', given, ['env', 'sitePackages', 'devRoot']) as GaudiProbeOptions;
  if (opts.env !== undefined && !isPlainObject('env', opts.env)) fail('E_ARGUMENT', 'env', opts.env, 'an object of environment variables');
  if (opts.sitePackages !== undefined) opts.sitePackages = readStrings('sitePackages', opts.sitePackages);
  if (opts.devRoot !== undefined) readString('devRoot', opts.devRoot, 'a directory path');
  const rawEnv = opts.env ?? (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
  // the variables read, each once, as strings
  const env: Record<string, string | undefined> = {};
  for (const k of ['HABANA_VISIBLE_DEVICES', 'BNBJS_HPU_SITE_PACKAGES', 'PATH', 'BNBJS_BACKEND']) {
    const v = guard(`env.${k}`, () => rawEnv[k]);
    if (v !== undefined && typeof v !== 'string') fail('E_ARGUMENT', `env.${k}`, v, 'a string or undefined');
    env[k] = v;
  }
  const base = {
    devices: [] as string[],
    visibleDevices: env.HABANA_VISIBLE_DEVICES ?? null,
    version: null,
    swapNibbles: false,
    emulated: true as const,
  };
  const fs = nodeBuiltin<typeof import('node:fs')>('node:fs');
  const path = nodeBuiltin<typeof import('node:path')>('node:path');
  const cp = nodeBuiltin<typeof import('node:child_process')>('node:child_process');
  const devRoot = opts.devRoot ?? '/dev';
  const devices: string[] = [];
  const list = (dir: string, re: RegExp) => {
    try {
      for (const f of fs.readdirSync(dir)) if (re.test(f)) devices.push(path.join(dir, f));
    } catch {
      // no such directory
    }
  };
  list(path.join(devRoot, 'accel'), /^accel\d+$/);
  list(devRoot, /^hl\d+$/);

  let version: GaudiVersion | null = null;
  let versionSource = 'not found: no hl-smi on PATH and no habana-torch-plugin metadata';
  {
    const dirs =
      opts.sitePackages ??
      (env.BNBJS_HPU_SITE_PACKAGES ?? '')
        .split(path.delimiter)
        .filter(Boolean)
        .concat(
          ['/usr/lib/python3/dist-packages', '/usr/local/lib/python3/dist-packages'],
          ...['/usr/lib', '/usr/local/lib'].map((root) => {
            try {
              return fs
                .readdirSync(root)
                .filter((d) => /^python3\.\d+$/.test(d))
                .flatMap((d) => [path.join(root, d, 'site-packages'), path.join(root, d, 'dist-packages')]);
            } catch {
              return [];
            }
          }),
        );
    for (const dir of dirs) {
      let entries: string[] = [];
      try {
        entries = fs.readdirSync(dir).filter((f) => /^habana_torch_plugin-.*\.dist-info$/.test(f));
      } catch {
        continue;
      }
      for (const e of entries) {
        const meta = path.join(dir, e, 'METADATA');
        let text = '';
        try {
          text = readMetadata(fs, meta);
        } catch {
          continue;
        }
        const line = /^Version:\s*(.*)$/m.exec(text)?.[1]?.trim() ?? '';
        version = line ? parseGaudiVersion(line) : null;
        versionSource = version
          ? `habana-torch-plugin metadata (${meta})`
          : `habana-torch-plugin metadata has no usable Version (${JSON.stringify(line)}) in ${meta}`;
        break;
      }
      if (version || versionSource.includes('metadata')) break;
    }
  }
  // bitsandbytes reads the habana-torch-plugin metadata; hl-smi is the fallback
  if (!version) {
    const hlSmi = (env.PATH ?? '')
      .split(path.delimiter)
      .map((d) => path.join(d, 'hl-smi'))
      .find((p) => fs.existsSync(p));
    if (hlSmi) {
      try {
        const out = cp.execFileSync(hlSmi, ['-v'], {
          encoding: 'utf8',
          timeout: 5000,
          env: rawEnv as NodeJS.ProcessEnv,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        version = parseGaudiVersion(out);
        versionSource = version ? `hl-smi -v (${hlSmi})` : `hl-smi -v printed no version: ${JSON.stringify(out.trim().slice(0, 80))}`;
      } catch (e) {
        versionSource = `hl-smi -v failed: ${(e as Error).message.split('\n')[0]}`;
      }
    }
  }
  const forced = env.BNBJS_BACKEND === 'hpu';
  const available = devices.length > 0 || forced;
  return {
    ...base,
    devices,
    version,
    versionSource,
    swapNibbles: needsNibbleSwap(version),
    available,
    reason: available ? null : 'no Gaudi device (/dev/accel/accel*, /dev/hl*) found',
  };
}

/**
 * A dist-info METADATA file's text: a regular file of at most 1 MiB, checked before and after a
 * non-blocking open, so that a FIFO or a device put there cannot hang the probe (it throws).
 */
function readMetadata(fs: typeof import('node:fs'), file: string): string {
  if (!fs.statSync(file).isFile()) throw new Error('not a regular file');
  const fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size > 1 << 20) throw new Error('not a regular file of at most 1 MiB');
    return fs.readFileSync(fd, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
}
