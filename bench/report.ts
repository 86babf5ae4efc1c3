/**
 * The benchmark report: markdown (tables of medians with min–max, Kindling/QEMU ratios,
 * where Kindling loses, the exit breakdown, what was not measured, how each number was taken)
 * and the SVG chart, both computed from one results JSON (bench/results.ts) and nothing else.
 *
 * The chart is hand-written SVG: a grouped bar chart, one group per metric both sides
 * measured, one bar per side (the median) with a min–max whisker, and the Kindling/QEMU ratio
 * at the right. Metrics have different units, so each group is scaled to its own largest
 * value; the value labels carry the units. No charting library: the markup is small,
 * deterministic (the unit test checks it) and renders in any browser or on GitHub.
 *
 *   node dist/bench/report.js bench/results/2025-01-01.json   # rewrites the .md and .svg
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compareAll, formatRatio, formatSummary, formatValue, SIDES, summarize, verdict, type Comparison, type Summary } from './stats.js';
import type { BenchResults, RunRecord, Side } from './results.js';
import { snapshotTargets } from './scenarios/snapshot.js';

/** Colours per side (colour-blind safe pair). */
export const SIDE_COLOURS: Record<Side, string> = { kindling: '#d95f02', qemu: '#1b9e77' };

/** Display names per side. */
export const SIDE_NAMES: Record<Side, string> = { kindling: 'Kindling', qemu: 'QEMU microvm' };

const WIDTH = 960;
const LABEL_W = 330;
const BAR_X = LABEL_W + 10;
const BAR_W = 420;
const BAR_H = 14;
const GROUP_GAP = 14;
const TOP = 88;

/** Escapes text for SVG/XML content and attribute values. */
export function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** The comparisons the chart can show: both sides present. */
export function chartable(comparisons: readonly Comparison[]): Comparison[] {
  return comparisons.filter((c) => c.kindling !== null && c.qemu !== null);
}

/** x coordinate of `value` inside a group scaled so that `scaleMax` fills the bar width. */
function xOf(value: number, scaleMax: number): number {
  const frac = scaleMax > 0 ? Math.max(0, value) / scaleMax : 0;
  return BAR_X + frac * BAR_W;
}

const num = (x: number): string => (Math.round(x * 10) / 10).toString();

/** One side's bar, whisker and value label. */
function bar(side: Side, s: Summary, y: number, scaleMax: number, unit: string, metricId: string): string {
  const x1 = xOf(s.median, scaleMax);
  const lo = xOf(s.min, scaleMax);
  const hi = xOf(s.max, scaleMax);
  const mid = y + BAR_H / 2;
  const title = `${SIDE_NAMES[side]}: median ${formatValue(s.median, unit)} ${unit}, min ${formatValue(s.min, unit)}, max ${formatValue(s.max, unit)}, n=${s.n}`;
  return [
    `<rect class="bar ${side}" data-metric="${xmlEscape(metricId)}" x="${BAR_X}" y="${num(y)}" width="${num(Math.max(0.5, x1 - BAR_X))}" height="${BAR_H}" fill="${SIDE_COLOURS[side]}"><title>${xmlEscape(title)}</title></rect>`,
    `<path class="whisker ${side}" d="M${num(lo)} ${num(mid)}H${num(hi)}M${num(lo)} ${num(y + 3)}V${num(y + BAR_H - 3)}M${num(hi)} ${num(y + 3)}V${num(y + BAR_H - 3)}" stroke="#222" stroke-width="1.2" fill="none"/>`,
    `<text x="${num(Math.max(hi, x1) + 6)}" y="${num(mid + 4)}" font-size="11">${xmlEscape(`${formatValue(s.median, unit)} ${unit}`)}</text>`,
  ].join('\n');
}

/** The SVG document for these comparisons (only those with both sides are drawn). */
export function renderSvg(comparisons: readonly Comparison[], title: string, subtitle: string): string {
  const rows = chartable(comparisons);
  const groupH = SIDES.length * (BAR_H + 3) + GROUP_GAP;
  const height = TOP + Math.max(1, rows.length) * groupH + 30;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text x="12" y="22" font-size="15" font-weight="bold">${xmlEscape(title)}</text>`,
    `<text x="12" y="40" font-size="11" fill="#444">${xmlEscape(subtitle)}</text>`,
  ];
  // Legend.
  SIDES.forEach((side, i) => {
    const x = BAR_X + i * 150;
    out.push(`<rect x="${x}" y="50" width="12" height="10" fill="${SIDE_COLOURS[side]}"/>`);
    out.push(`<text x="${x + 16}" y="59" font-size="11">${xmlEscape(SIDE_NAMES[side])}</text>`);
  });
  out.push(`<text x="${BAR_X + 300}" y="59" font-size="11" fill="#444">bar = median, whisker = min–max</text>`);
  out.push(`<text x="12" y="${TOP - 10}" font-size="11" fill="#444">each metric scaled to its own maximum</text>`);
  out.push(`<text x="${WIDTH - 12}" y="${TOP - 10}" font-size="11" text-anchor="end" font-weight="bold">Kindling/QEMU</text>`);
  if (rows.length === 0) out.push(`<text x="12" y="${TOP + 20}" font-size="12">no metric has samples from both sides</text>`);

  rows.forEach((c, i) => {
    const y0 = TOP + i * groupH;
    const unit = c.metric.unit;
    const scaleMax = Math.max(c.kindling!.max, c.qemu!.max, c.kindling!.median, c.qemu!.median) * 1.02;
    const label = `${c.metric.scenario}: ${c.metric.label}`;
    out.push(`<g class="metric" data-metric="${xmlEscape(c.metric.id)}">`);
    out.push(`<text x="12" y="${num(y0 + BAR_H + 2)}" font-size="11">${xmlEscape(label.length > 55 ? `${label.slice(0, 54)}…` : label)}</text>`);
    SIDES.forEach((side, j) => {
      out.push(bar(side, c[side]!, y0 + j * (BAR_H + 3), scaleMax, unit, c.metric.id));
    });
    const colour = c.kindlingLoses ? '#b00' : '#060';
    out.push(`<text class="ratio" x="${WIDTH - 12}" y="${num(y0 + BAR_H + 2)}" font-size="12" text-anchor="end" fill="${colour}">${xmlEscape(formatRatio(c.ratio))}</text>`);
    out.push('</g>');
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Escapes a table cell (pipes would split it). */
function cell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

/** The report title for a results file. */
export function reportTitle(r: BenchResults): string {
  return `Kindling vs QEMU microvm — ${r.startedAt.slice(0, 10)}`;
}

/** The one-line caveat shown under the title and in the chart. */
export function caveatLine(r: BenchResults): string {
  return r.environment.mode === 'sandbox'
    ? 'nested KVM inside QEMU TCG; absolute numbers say little about hardware, ratios are the point'
    : 'native KVM on this host; still one machine and few runs, ratios are the point';
}

/** The main comparison table: metrics both sides measured. */
function comparisonTable(rows: readonly Comparison[]): string[] {
  const out = [
    `| Scenario | Metric | Unit | ${SIDE_NAMES.kindling} median (min–max) | ${SIDE_NAMES.qemu} median (min–max) | Kindling/QEMU | n (K/Q) |`,
    '|---|---|---|---:|---:|---:|---:|',
  ];
  for (const c of rows) {
    const mark = c.kindlingLoses ? ' ▲' : '';
    out.push(`| ${cell(c.metric.scenario)} | ${cell(c.metric.label)} | ${c.metric.unit} | ${formatSummary(c.kindling, c.metric.unit)} | ${formatSummary(c.qemu, c.metric.unit)} | ${formatRatio(c.ratio)}${mark} | ${c.kindling?.n ?? 0}/${c.qemu?.n ?? 0} |`);
  }
  return out;
}

/** Metrics only one side has (Kindling's own counters, per-actor cost, ...). */
function oneSidedTable(rows: readonly Comparison[]): string[] {
  if (rows.length === 0) return [];
  const out = ['| Scenario | Metric | Unit | Median (min–max) | Side | n |', '|---|---|---|---:|---|---:|'];
  for (const c of rows) {
    const side = c.kindling ? 'kindling' : 'qemu';
    const s = c[side];
    out.push(`| ${cell(c.metric.scenario)} | ${cell(c.metric.label)} | ${c.metric.unit} | ${formatSummary(s, c.metric.unit)} | ${SIDE_NAMES[side]} | ${s?.n ?? 0} |`);
  }
  return out;
}

/** Reference series (bare node) next to the metric they belong to. */
function referenceLines(rows: readonly Comparison[]): string[] {
  const out: string[] = [];
  for (const c of rows) {
    if (!c.reference || !c.metric.reference) continue;
    const unit = c.metric.unit;
    const extra = c.kindling ? `; Kindling minus it: ${formatValue(c.kindling.median - c.reference.median, unit)} ${unit}` : '';
    out.push(`- ${c.metric.label}: ${c.metric.reference.label} in the same run took ${formatSummary(c.reference, unit)} ${unit}${extra}.`);
  }
  return out;
}

/** debugfs counters shown in the exit breakdown (when non-zero on a side). */
const BREAKDOWN_COUNTERS = [
  'exits', 'io_exits', 'mmio_exits', 'halt_exits', 'irq_exits', 'irq_window_exits', 'request_irq_exits',
  'signal_exits', 'insn_emulation', 'hypercalls', 'irq_injections', 'pf_taken', 'pf_emulate',
];

/**
 * Medians of KVM's counters per boot variant and side, from the runs' raw data: userspace
 * exits by KVM_EXIT reason (tracepoint) and the per-VM debugfs counters. Shows *why* the
 * exit totals differ.
 */
function exitBreakdown(r: BenchResults): string[] {
  const out: string[] = [];
  const variants = [...new Set(r.runs.filter((x) => x.scenario === 'boot' && x.ok && !x.warmup && x.data.kvm).map((x) => x.variant))];
  for (const variant of variants) {
    const runs = r.runs.filter((x) => x.scenario === 'boot' && x.variant === variant && x.ok && !x.warmup);
    const values = (side: string, get: (d: Record<string, unknown>) => number | undefined): number[] =>
      runs.filter((x) => x.side === side).map((x) => get(x.data)).filter((v): v is number => typeof v === 'number');
    const rows: [string, (d: Record<string, unknown>) => number | undefined][] = [];
    const reasons = new Set<string>();
    for (const x of runs) for (const k of Object.keys((x.data.userspaceExits as { byReason?: object } | undefined)?.byReason ?? {})) reasons.add(k);
    for (const k of [...reasons].sort()) rows.push([`userspace exits: ${k}`, (d) => (d.userspaceExits as { byReason: Record<string, number> } | undefined)?.byReason[k] ?? 0]);
    for (const k of BREAKDOWN_COUNTERS) rows.push([`debugfs ${k}`, (d) => (d.kvm as Record<string, number> | undefined)?.[k]]);
    out.push(`#### ${variant}`, '', '| Counter (median per boot, until the marker) | Kindling | QEMU |', '|---|---:|---:|');
    for (const [label, get] of rows) {
      const k = summarize(values('kindling', get));
      const q = summarize(values('qemu', get));
      if (!k?.median && !q?.median) continue;
      out.push(`| ${label} | ${k ? formatValue(k.median, 'exits') : 'n/a'} | ${q ? formatValue(q.median, 'exits') : 'n/a'} |`);
    }
    out.push('');
  }
  return out;
}

/**
 * Runs during which another QEMU was seen on the host: a run lasts from its start to the
 * next run's start (the last one to the end of the bench); a busy check inside that window,
 * widened by the 5 s check interval, marks it. Clocks inside and outside the sandbox can
 * differ by a second or two, so this is approximate.
 */
export function contendedRuns(r: BenchResults): Set<RunRecord> {
  const busy = (r.environment.hostContention?.busyAt ?? []).map((t) => Date.parse(t));
  const out = new Set<RunRecord>();
  if (busy.length === 0) return out;
  r.runs.forEach((run, i) => {
    const from = Date.parse(run.startedAt) - 5_000;
    const to = Date.parse(r.runs[i + 1]?.startedAt ?? r.finishedAt) + 5_000;
    if (busy.some((t) => t >= from && t <= to)) out.add(run);
  });
  return out;
}

/** Run counts per scenario and side, measured runs only. */
function runCounts(r: BenchResults): string[] {
  const contended = contendedRuns(r);
  const counts = new Map<string, { ok: number; failed: number; contended: number }>();
  for (const run of r.runs) {
    if (run.warmup) continue;
    const key = `${run.scenario} / ${run.variant} / ${run.side}`;
    const c = counts.get(key) ?? { ok: 0, failed: 0, contended: 0 };
    if (run.ok) c.ok++;
    else c.failed++;
    if (contended.has(run)) c.contended++;
    counts.set(key, c);
  }
  const out = ['| Scenario / variant / side | ok | failed | overlapped another QEMU |', '|---|---:|---:|---:|'];
  for (const [k, v] of counts) out.push(`| ${cell(k)} | ${v.ok} | ${v.failed} | ${v.contended} |`);
  return out;
}

/** The markdown report; `svgName` is the chart's file name next to it. */
export function renderMarkdown(r: BenchResults, svgName: string, jsonName: string): string {
  const all = compareAll(r.metrics);
  const both = all.filter((c) => c.kindling && c.qemu);
  const oneSided = all.filter((c) => (c.kindling === null) !== (c.qemu === null));
  const losses = both.filter((c) => c.kindlingLoses);
  const wins = both.filter((c) => c.kindlingLoses === false);
  const env = r.environment;
  const failures = r.runs.filter((x) => !x.ok && !x.warmup);
  const hc = env.hostContention;
  const contended = [...contendedRuns(r)].filter((x) => !x.warmup);
  const where = [...new Set(contended.map((x) => `${x.scenario}/${x.variant}`))].join(', ');
  const overlap = hc?.busyAt ? ` That overlapped ${contended.length} of ${r.runs.filter((x) => !x.warmup).length} measured runs (${where || 'none'}; see Runs below).` : '';
  const contention = !hc ? 'Host contention was not checked.'
    : hc.busy ? `**Warning: another QEMU (another sandbox on this 2-core host) ran during ${hc.busy} of ${hc.checks} checks (every 5 s): the timings of the runs it overlapped are distorted; exit counts and memory do not depend on CPU contention.**${overlap}`
      : `No other QEMU ran on the host during the run (${hc.checks} checks, every 5 s).`;
  const lines: string[] = [
    `# ${reportTitle(r)}`,
    '',
    `> **${caveatLine(r)}.** ${env.caveat}`,
    '',
    contention,
    '',
    `Every sample behind this report is in [\`${jsonName}\`](${jsonName}); the tables and the chart are`,
    `computed from that file by \`bench/report.ts\`. ${r.settings.runsPerSide} measured runs per side per scenario,`,
    `alternating Kindling, QEMU, Kindling, QEMU, … (plus ${r.settings.warmupRuns} unmeasured warm-up run(s) per side).`,
    'Medians with min–max; ratio = Kindling median ÷ QEMU median. ▲ marks metrics where Kindling loses.',
    '',
    `![Kindling vs QEMU medians with min–max whiskers](${svgName})`,
    '',
    '## Results',
    '',
    ...comparisonTable(both),
    '',
  ];
  const refs = referenceLines(all);
  if (refs.length) lines.push(...refs, '');
  lines.push('## Where Kindling loses', '');
  if (losses.length === 0) lines.push('Nowhere in this run.');
  for (const c of losses) lines.push(`- **${c.metric.scenario}: ${c.metric.label}**: ${verdict(c)}.`);
  lines.push('', `Kindling is ahead or level on ${wins.length} of ${both.length} compared metrics.`, '');
  if (oneSided.length) lines.push('## Measured on one side only', '', ...oneSidedTable(oneSided), '');
  const targets = snapshotTargets(r);
  if (targets.length) lines.push('## Snapshot targets (issue 16), from the medians', '', ...targets, '');
  const breakdown = exitBreakdown(r);
  if (breakdown.length) lines.push('## Exit breakdown', '', ...breakdown);
  lines.push('## Not measured', '');
  if (r.skipped.length === 0) lines.push('Every scenario ran.');
  for (const s of r.skipped) lines.push(`- **${s.scenario}**: ${s.reason}`);
  lines.push('', '## Method', '');
  for (const c of all) if (c.metric.note) lines.push(`- \`${c.metric.id}\` (${c.metric.label}): ${c.metric.note}`);
  lines.push(
    `- Guest: ${r.settings.guestMemMiB} MiB unless noted; kernel command line \`${r.settings.bootArgs}\`.`,
    `- QEMU: \`${r.settings.qemuMachine}\`, same kernel, initramfs, memory and vCPU count, ${env.mode === 'sandbox' ? "in the same sandbox boot as Kindling's runs of that scenario" : 'on the same host'}.`,
    '',
    '## Environment',
    '',
    `- Mode: ${env.mode}; kernel ${env.kernel}; ${env.cpus} CPU(s) (${env.cpuModel}); ${env.memMiB} MiB RAM.`,
    `- Node ${env.node}; ${env.qemu}; Kindling ${env.kindlingVersion} at ${env.gitCommit}.`,
    `- Programs and guest images ${env.stagedOnTmpfs ? 'ran from a tmpfs copy (bench/stage.ts), not the sandbox\'s uncached 9p root' : 'ran in place'}.`,
    `- KVM statistics: debugfs ${env.kvmStats.debugfs ? 'readable' : 'unavailable'}, tracefs histogram ${env.kvmStats.tracefsHist ? 'readable' : 'unavailable'}.`,
    `- Started ${r.startedAt}, finished ${r.finishedAt}.`,
    '',
    '### Runs',
    '',
    ...runCounts(r),
    '',
  );
  if (failures.length) {
    lines.push('### Failed runs', '');
    for (const f of failures) lines.push(`- ${f.scenario} / ${f.variant} / ${f.side} round ${f.round}: ${cell(f.error ?? 'unknown error')}`);
    lines.push('');
  }
  return lines.join('\n');
}

/** One console line per compared metric: `label: K … | Q … | ratio`. */
export function ratioLines(r: BenchResults): string[] {
  return compareAll(r.metrics).filter((c) => c.kindling && c.qemu).map((c) => {
    const u = c.metric.unit;
    return `${c.metric.scenario}: ${c.metric.label}: Kindling ${formatSummary(c.kindling, u)} ${u}, QEMU ${formatSummary(c.qemu, u)} ${u} → ${formatRatio(c.ratio)}${c.kindlingLoses ? ' (Kindling loses)' : ''}`;
  });
}

/** Renders both artefacts for a results object; returns their text. */
export function renderReport(r: BenchResults, baseName: string, findings: string | null = null): { markdown: string; svg: string } {
  const svg = renderSvg(compareAll(r.metrics), reportTitle(r), caveatLine(r));
  let markdown = renderMarkdown(r, `${baseName}.svg`, `${baseName}.json`);
  // The analysis of a run (profiles, floors: why a metric loses) is written by hand beside its
  // JSON as <base>.findings.md and kept in the report through every re-render.
  if (findings) markdown = markdown.replace('\n## Method\n', `\n${findings.trim()}\n\n## Method\n`);
  return { markdown, svg };
}

/** Reads `<base>.json` and writes `<base>.md` and `<base>.svg` next to it; returns the paths. */
export function writeReport(jsonPath: string): { md: string; svg: string; results: BenchResults } {
  const results = JSON.parse(readFileSync(jsonPath, 'utf8')) as BenchResults;
  const base = jsonPath.replace(/\.json$/, '');
  const findingsPath = `${base}.findings.md`;
  const { markdown, svg } = renderReport(results, basename(base), existsSync(findingsPath) ? readFileSync(findingsPath, 'utf8') : null);
  writeFileSync(`${base}.md`, markdown);
  writeFileSync(`${base}.svg`, svg);
  return { md: `${base}.md`, svg: `${base}.svg`, results };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node dist/bench/report.js bench/results/<date>.json');
    process.exit(2);
  }
  const { md, svg, results } = writeReport(file);
  for (const l of ratioLines(results)) console.log(l);
  console.log(`wrote ${md} and ${svg}`);
}
