// What the benchmarks share: their command-line options and the daemon's
// CPU time and memory, read from /proc.
import { readFileSync } from "node:fs";

const CLOCK_TICKS = 100;

/** The number after `--name` on the command line, or `fallback`. */
export function option(name, fallback) {
  const args = process.argv.slice(2);
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
}

/** RSS in MiB and cumulative CPU seconds of `pid`. */
export function sample(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKb = Number(status.match(/VmRSS:\s+(\d+)/)[1]);
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  return { rssMiB: rssKb / 1024, cpuSeconds, at: performance.now() };
}

/** Average CPU% (of one core) over the next `seconds`, and the RSS at their end. */
export async function load(pid, seconds) {
  const start = sample(pid);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const end = sample(pid);
  return { cpuPercent: (100 * (end.cpuSeconds - start.cpuSeconds)) / ((end.at - start.at) / 1000), rssMiB: end.rssMiB };
}
