// Types of smoke.js (plain JavaScript so that every runtime loads it as it is).
export declare const GOLDEN_FILES: string[];
export declare const CHECK_NAMES: string[];
export declare function smoke(
  lib: unknown,
  files: Record<string, Uint8Array>,
): {
  build: string;
  features: { simd: boolean; relaxedSimd: boolean; threads: boolean };
  results: { name: string; ok: boolean; detail: string }[];
};
export declare function decodeFixtures(b64: Record<string, string>): Record<string, Uint8Array>;
export declare function threadRun(lib: unknown): Promise<{
  threads?: number;
  threadedSame?: boolean;
  workerJobs?: number;
  threadError?: string;
  resident?: boolean;
  residentSame?: boolean;
}>;
