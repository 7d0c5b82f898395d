// CPU time and RSS of process trees, read from /proc (Linux).
import { readFileSync, readdirSync } from "node:fs";

const TICKS_PER_SECOND = 100;

function stat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const close = text.lastIndexOf(")");
    const comm = text.slice(text.indexOf("(") + 1, close);
    const fields = text.slice(close + 2).split(" ");
    return { pid, comm, ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return null;
  }
}

/** The pids of `root` and all its descendants, optionally only those whose command is `comm`. */
export function tree(root, comm) {
  const all = readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .map(stat)
    .filter(Boolean);
  const children = new Map();
  for (const p of all) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const found = [];
  const walk = (pid) => {
    for (const child of children.get(pid) ?? []) {
      found.push(child);
      walk(child.pid);
    }
  };
  const self = all.find((p) => p.pid === root);
  if (self) found.push(self);
  walk(root);
  return found.filter((p) => !comm || p.comm === comm).map((p) => p.pid);
}

/** CPU seconds used so far by these pids. */
export function cpuSeconds(pids) {
  return pids.reduce((sum, pid) => sum + (stat(pid)?.cpuTicks ?? 0), 0) / TICKS_PER_SECOND;
}

/** Resident memory of these pids, in MB. */
export function rssMb(pids) {
  let kb = 0;
  for (const pid of pids) {
    try {
      const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      kb += match ? Number(match[1]) : 0;
    } catch {
      // gone
    }
  }
  return kb / 1024;
}
