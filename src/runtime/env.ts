// Environment variables read without side effects in any runtime. Deno throws
// (or, on a terminal, prompts) when process.env is read without --allow-env, so
// the permission is queried first; browsers and Workers have no process at all.

interface DenoPermissions {
  querySync?(d: { name: 'env'; variable: string }): { state: string };
}
interface Host {
  Deno?: { permissions?: DenoPermissions };
  process?: { env?: Record<string, string | undefined> };
}

/** The variable's value, or undefined where it is unset or cannot be read without asking. */
export function envVar(name: string): string | undefined {
  const g = globalThis as Host;
  try {
    const query = g.Deno?.permissions?.querySync;
    if (query && query.call(g.Deno!.permissions, { name: 'env', variable: name }).state !== 'granted') return undefined;
    return g.process?.env?.[name];
  } catch {
    return undefined;
  }
}
