// The conversion progress line on a terminal: bytes converted, throughput and time left.
import type { Progress, ProgressEvent } from '../checkpoint/common.js';

/** 1536 -> '1.5 KiB', 3.2e9 -> '3.0 GiB'. */
export function bytesText(b: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) {
    b /= 1024;
    i++;
  }
  return i === 0 ? `${b} B` : `${b.toFixed(1)} ${units[i]}`;
}

/** 7 -> '7s', 185 -> '3m05s', 3725 -> '1h02m'. */
export function durationText(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const t = Math.round(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}

/** `[#####.......]  42% 1.1 GiB/2.6 GiB  310.2 MiB/s  ETA 5s  name` */
export function progressLine(p: ProgressEvent, width = 24): string {
  const frac = p.bytesTotal > 0 ? Math.min(1, p.bytesDone / p.bytesTotal) : 1;
  const filled = Math.round(frac * width);
  const rate = p.seconds > 0 ? p.bytesDone / p.seconds : 0;
  const eta = p.bytesDone >= p.bytesTotal ? 0 : rate > 0 ? (p.bytesTotal - p.bytesDone) / rate : Infinity;
  return (
    `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(frac * 100)).padStart(3)}% ` +
    `${bytesText(p.bytesDone)}/${bytesText(p.bytesTotal)}  ${bytesText(rate)}/s  ETA ${durationText(eta)}  ${p.name}`
  );
}

/** A progress callback redrawing one line of `stream`, or undefined when it is not a terminal. */
export function progressBar(
  stream: { isTTY?: boolean; columns?: number; write(s: string): unknown },
  escape: (s: string) => string,
): Progress | undefined {
  if (stream.isTTY !== true) return undefined;
  return (p) => {
    // escaped first (an escape is wider than its character), then cut by code points (never half a surrogate pair)
    const line = [...escape(progressLine(p, 24))];
    const cols = Math.max(40, (stream.columns || 100) - 1); // a pseudo-terminal may report 0 columns
    stream.write(`\r\x1b[K${line.slice(0, cols).join('')}`);
    if (p.bytesDone >= p.bytesTotal) stream.write('\n');
  };
}
