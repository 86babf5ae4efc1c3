/** Benchmark statistics and report on fixed sample data: medians, ratios, markdown, SVG; the per-thread CPU reading. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compare, compareAll, formatSummary, median, pairedDifference, ratio, summarize } from '../../bench/stats.js';
import { renderMarkdown, ratioLines, renderReport } from '../../bench/report.js';
import { renderSvg, xmlEscape } from '../../bench/report.js';
import { ResultsCollector, mergeResults, type BenchResults, type MetricResult } from '../../bench/results.js';
import { parseHist } from '../../bench/scenarios/kvm-stats.js';
import { parseSmaps, guestRamMatcher, cpuSince, threadCpuMap } from '../../bench/scenarios/process.js';
import { blockRates } from '../../bench/scenarios/block.js';
import { iperfRates } from '../../bench/scenarios/net.js';
import { statSync } from 'node:fs';

const metric = (id: string, kindling: number[], qemu: number[], extra: Partial<MetricResult> = {}): MetricResult => ({
  id, scenario: 'Boot', label: id, unit: 'ms', better: 'lower', samples: { kindling, qemu }, ...extra,
});

/** Fixed data: Kindling loses boot (ratio 1.5), wins exits (0.5), one Kindling-only metric. */
function fixture(): BenchResults {
  return {
    schema: 1,
    startedAt: '2025-01-02T03:04:05.000Z',
    finishedAt: '2025-01-02T03:34:05.000Z',
    environment: {
      mode: 'sandbox', caveat: 'test caveat', kernel: '6.1.0', cpuModel: 'cpu', cpus: 2, memMiB: 6144,
      node: 'v20.0.0', qemu: 'QEMU emulator version 7.2', kindlingVersion: '0.1.0', gitCommit: 'abc1234', stagedOnTmpfs: true,
      kvmStats: { debugfs: true, tracefsHist: true },
    },
    settings: { runsPerSide: 5, warmupRuns: 1, guestMemMiB: 128, bootArgs: 'console=ttyS0', qemuMachine: 'qemu -M microvm' },
    metrics: [
      metric('boot.mini', [1500, 1400, 1600, 1550, 1450], [1000, 900, 1100, 1050, 950], { label: 'Minimal <kernel> & boot' }),
      { ...metric('exits.mini', [100, 110, 90, 105, 95], [200, 210, 190, 205, 195]), scenario: 'Exits', unit: 'exits' },
      { ...metric('exits.self', [50, 51, 52, 53, 54], []), scenario: 'Exits', unit: 'exits' },
      { ...metric('block.read', [80, 90, 100, 110, 120], [50, 50, 50, 50, 50]), scenario: 'Block', unit: 'MiB/s', better: 'higher' },
      { ...metric('startup.api', [300, 320, 310, 305, 315], [100, 110, 105, 95, 90]), scenario: 'Startup', reference: { label: 'bare node', samples: [200, 210, 205, 195, 190] } },
    ],
    skipped: [{ scenario: 'Memory with a block device', reason: 'not yet: block issue open' }],
    runs: [
      { scenario: 'boot', variant: 'mini-1vcpu', side: 'kindling', round: 0, warmup: false, ok: true, startedAt: 'x', data: { kvm: { exits: 900, io_exits: 120 }, userspaceExits: { total: 100, byReason: { IO: 90, MMIO: 10 } } } },
      { scenario: 'boot', variant: 'mini-1vcpu', side: 'kindling', round: 1, warmup: false, ok: true, startedAt: 'x', data: { kvm: { exits: 1100, io_exits: 140 }, userspaceExits: { total: 110, byReason: { IO: 100, MMIO: 10 } } } },
      { scenario: 'boot', variant: 'mini-1vcpu', side: 'qemu', round: 1, warmup: false, ok: true, startedAt: 'x', data: { kvm: { exits: 300, io_exits: 200 }, userspaceExits: { total: 200, byReason: { IO: 200 } } } },
      { scenario: 'boot', variant: 'mini-1vcpu', side: 'qemu', round: 0, warmup: false, ok: false, error: 'timeout | pipe', startedAt: 'x', data: {} },
    ],
  };
}

test('median: odd and even counts, unsorted input, non-finite samples ignored', () => {
  assert.is(median([3, 1, 2]), 2);
  assert.is(median([4, 1, 3, 2]), 2.5);
  assert.is(median([5, Number.NaN, 1, 3]), 3);
  assert.ok(Number.isNaN(median([])));
});

test('summarize and ratio', () => {
  assert.equal(summarize([1500, 1400, 1600, 1550, 1450]), { n: 5, median: 1500, min: 1400, max: 1600 });
  assert.is(summarize([]), null);
  assert.is(summarize(undefined), null);
  assert.is(ratio(summarize([3]), summarize([2])), 1.5);
  assert.is(ratio(summarize([3]), summarize([0])), null);
  assert.is(ratio(summarize([3]), null), null);
  assert.is(ratio(summarize([3]), summarize([-1])), null, 'no ratio across signs');
  assert.is(ratio(summarize([-3]), summarize([1])), null);
});

test('compare: ratio and who loses, by direction', () => {
  const [boot, exits, self, block] = compareAll(fixture().metrics);
  assert.is(boot!.ratio, 1.5);
  assert.is(boot!.kindlingLoses, true);
  assert.is(exits!.ratio, 0.5);
  assert.is(exits!.kindlingLoses, false);
  assert.is(self!.ratio, null);
  assert.is(self!.kindlingLoses, null);
  assert.is(block!.ratio, 2, 'higher-is-better metric: 100/50');
  assert.is(block!.kindlingLoses, false);
  assert.is(compare(metric('x', [40], [50], { better: 'higher' })).kindlingLoses, true);
});

test('pairedDifference drops pairs with a missing member', () => {
  assert.equal(pairedDifference([10, Number.NaN, 30, 40], [1, 2, 3]), [9, 27]);
});

test('formatSummary: precision by magnitude and unit', () => {
  assert.is(formatSummary(summarize([1500, 1400, 1600]), 'ms'), '1500 (1400–1600)');
  assert.is(formatSummary(summarize([12.345, 11, 13]), 'MiB'), '12.3 (11.0–13.0)');
  assert.is(formatSummary(summarize([0.5, 0.25]), 'MiB'), '0.38 (0.25–0.50)');
  assert.is(formatSummary(summarize([100.4, 90]), 'exits'), '95 (90–100)');
  assert.is(formatSummary(null, 'ms'), 'n/a');
});

test('markdown: table rows carry the right medians, ranges and ratios', () => {
  const md = renderMarkdown(fixture(), 'r.svg', 'r.json');
  assert.match(md, /^# Kindling vs QEMU microvm — 2025-01-02/);
  assert.match(md, /nested KVM inside QEMU TCG; absolute numbers say little about hardware, ratios are the point/);
  assert.ok(md.includes('| Boot | Minimal <kernel> & boot | ms | 1500 (1400–1600) | 1000 (900–1100) | 1.50× ▲ | 5/5 |'), md);
  assert.ok(md.includes('| Exits | exits.mini | exits | 100 (90–110) | 200 (190–210) | 0.50× | 5/5 |'));
  assert.ok(md.includes('| Block | block.read | MiB/s | 100 (80–120) | 50.0 (50.0–50.0) | 2.00× | 5/5 |'));
  assert.ok(md.includes('| Exits | exits.self | exits | 52 (50–54) | Kindling | 5 |'), 'one-sided table');
  assert.ok(md.includes('![Kindling vs QEMU medians with min–max whiskers](r.svg)'));
  assert.ok(md.includes('[`r.json`](r.json)'));
  assert.match(md, /## Where Kindling loses\n\n- \*\*Boot: Minimal <kernel> & boot\*\*: Kindling 1\.50× of QEMU/);
  assert.match(md, /\*\*Startup: startup\.api\*\*/);
  assert.ok(md.includes('bare node in the same run took 200 (190–210) ms; Kindling minus it: 110 ms'));
  assert.ok(md.includes('- **Memory with a block device**: not yet: block issue open'));
  assert.ok(md.includes('timeout \\| pipe'), 'failed run listed, pipe escaped');
  assert.match(md, /Kindling is ahead or level on 2 of 4 compared metrics/);
  assert.ok(md.includes('| userspace exits: IO | 95 | 200 |'), 'exit breakdown: medians of the raw runs');
  assert.ok(md.includes('| userspace exits: MMIO | 10 | 0 |'));
  assert.ok(md.includes('| debugfs exits | 1000 | 300 |'));
  assert.ok(md.includes('Host contention was not checked.'));
  const busy = fixture();
  busy.runs.forEach((x, i) => { x.startedAt = `2025-01-02T03:${10 + i * 5}:00.000Z`; });
  busy.environment.hostContention = { checks: 10, busy: 1, otherPids: [42], busyAt: ['2025-01-02T03:21:00.000Z'] };
  const busyMd = renderMarkdown(busy, 'r.svg', 'r.json');
  assert.ok(busyMd.includes('ran during 1 of 10 checks'), busyMd);
  assert.ok(busyMd.includes('That overlapped 1 of 4 measured runs (boot/mini-1vcpu'), 'only the run spanning 03:20–03:25');
});

test('SVG: one bar and one whisker per side per two-sided metric, ratios, escaped labels', () => {
  const r = fixture();
  const svg = renderSvg(compareAll(r.metrics), 'Title & more', 'sub');
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  assert.ok(svg.trimEnd().endsWith('</svg>'));
  assert.is((svg.match(/<rect class="bar kindling"/g) ?? []).length, 4);
  assert.is((svg.match(/<rect class="bar qemu"/g) ?? []).length, 4);
  assert.is((svg.match(/class="whisker /g) ?? []).length, 8);
  assert.not.ok(svg.includes('data-metric="exits.self"'), 'Kindling-only metric not charted');
  for (const x of ['1.50×', '0.50×', '2.00×', '3.10×']) assert.ok(svg.includes(`>${x}</text>`), x);
  assert.ok(svg.includes('Title &amp; more'));
  assert.ok(svg.includes('Minimal &lt;kernel&gt; &amp; boot'));
  assert.not.ok(/<text[^>]*>[^<]*&(?!amp;|lt;|gt;|quot;)/.test(svg), 'no raw ampersand in text');
  // The longer QEMU boot bar (median 1000 of scale 1600*1.02) is shorter than Kindling's (1500).
  const width = (side: string): number => Number(new RegExp(`class="bar ${side}" data-metric="boot.mini" x="[\\d.]+" y="[\\d.]+" width="([\\d.]+)"`).exec(svg)![1]);
  assert.ok(width('kindling') > width('qemu'));
  assert.is(xmlEscape('<a&"b">'), '&lt;a&amp;&quot;b&quot;&gt;');
});

test('renderReport and ratioLines agree with the data', () => {
  const { markdown, svg } = renderReport(fixture(), '2025-01-02');
  assert.ok(markdown.includes('(2025-01-02.svg)'));
  assert.ok(svg.includes('nested KVM inside QEMU TCG'));
  const lines = ratioLines(fixture());
  assert.is(lines.length, 4);
  assert.match(lines[0]!, /Kindling 1500 \(1400–1600\) ms, QEMU 1000 \(900–1100\) ms → 1\.50× \(Kindling loses\)/);
});

test('the hand-written findings of a run go in before Method and survive a re-render', () => {
  const plain = renderReport(fixture(), 'x').markdown;
  const { markdown } = renderReport(fixture(), 'x', '## Where the time goes\n\nStart-up is module loading.\n');
  assert.not.ok(plain.includes('Where the time goes'));
  const at = markdown.indexOf('## Where the time goes');
  assert.ok(at > 0 && at < markdown.indexOf('## Method'), 'findings precede Method');
  assert.is(markdown.replace('## Where the time goes\n\nStart-up is module loading.\n\n', ''), plain);
});

test('ResultsCollector keeps definition order and drops unavailable samples', () => {
  const c = new ResultsCollector();
  c.define({ id: 'b', scenario: 'Boot', label: 'b', unit: 'ms', better: 'lower' });
  c.define({ id: 'a', scenario: 'Boot', label: 'a', unit: 'ms', better: 'lower' });
  c.add('a', 'kindling', 1);
  c.add('a', 'kindling', undefined);
  c.add('a', 'qemu', Number.NaN);
  assert.equal(c.metrics().map((m) => m.id), ['b', 'a']);
  assert.equal(c.metrics()[1]!.samples, { kindling: [1], qemu: [] });
  assert.throws(() => c.add('zzz', 'qemu', 1));
});

test('parsers: tracefs histogram, smaps guest mapping, busybox dd', () => {
  const hist = parseHist([
    '# event histogram', '',
    '{ common_pid:        812, reason:          2 } hitcount:       4431',
    '{ common_pid:        812, reason:         10 } hitcount:          7',
    'Totals:', '    Hits: 4438',
  ].join('\n'));
  assert.equal([...hist], [['812,2', 4431], ['812,10', 7]]);
  const smaps = parseSmaps([
    '7f0000000000-7f0008000000 rw-s 00000000 00:01 42                         /memfd:kindling-guest-ram (deleted)',
    'Size:             131072 kB', 'Rss:               20480 kB',
    '7f1000000000-7f1008000000 rw-p 00000000 00:00 0 ',
    'Size:             131072 kB', 'Rss:               30720 kB',
  ].join('\n'));
  assert.is(smaps.length, 2);
  assert.equal(smaps.filter(guestRamMatcher('kindling', 128)).map((m) => m.rssKib), [20480]);
  assert.equal(smaps.filter(guestRamMatcher('qemu', 128)).map((m) => m.rssKib), [30720]);
  assert.equal(blockRates('64+0 records out\r\nBENCH_BLK 4.50 5.00 7.00\r\nKINDLING_EXIT=0', 64), { read: 128, write: 32 });
  assert.equal(blockRates('BENCH_BLK 4.50 4.50 7.00', 64), { read: undefined, write: 25.6 });
  assert.equal(blockRates('BENCH_BLK 1.00 3.00 11.00'), { read: 128, write: 32 }, 'default size is the 256 MiB image');
  assert.equal(blockRates('no line'), {});
});

test('cpuSince names the main thread and gives the kernel part of a thread\'s CPU', () => {
  const before = threadCpuMap(process.pid);
  // Spend ≥ 200 ms of system time (stat(2) calls) on this, the main thread.
  const start = process.cpuUsage();
  while (process.cpuUsage(start).system < 200_000) statSync('/');
  const text = cpuSince(before, process.pid);
  const main = / ?([^:]+) \(main\):(\d+)(?: \(sys (\d+)\))?/.exec(text);
  assert.ok(main, text);
  assert.ok(Number(main![2]) >= 190, text);
  assert.ok(Number(main![3] ?? 0) >= 150, `no kernel part, or too small: ${text}`);
});

test('mergeResults: samples pooled per metric id, runs and skips joined, span and scenario order kept', () => {
  const a = fixture();
  a.metrics = a.metrics.filter((m) => m.id === 'block.read' || m.id === 'startup.api');
  a.environment.kvmStats.tracefsHist = false;
  const b = fixture();
  b.startedAt = '2025-01-02T04:00:00.000Z';
  b.finishedAt = '2025-01-02T04:30:00.000Z';
  b.metrics = b.metrics.filter((m) => m.id !== 'block.read');
  const m = mergeResults([a, b]);
  assert.equal(m.metrics.map((x) => x.id), ['boot.mini', 'exits.mini', 'exits.self', 'startup.api', 'block.read']);
  const startup = m.metrics.find((x) => x.id === 'startup.api')!;
  assert.equal(startup.samples.kindling, [300, 320, 310, 305, 315, 300, 320, 310, 305, 315]);
  assert.is(startup.reference?.samples.length, 10);
  assert.is(a.metrics.find((x) => x.id === 'startup.api')!.samples.kindling.length, 5, 'inputs are not modified');
  assert.is(m.runs.length, 8);
  assert.is(m.skipped.length, 2);
  assert.equal([m.startedAt, m.finishedAt], ['2025-01-02T03:04:05.000Z', '2025-01-02T04:30:00.000Z']);
  assert.is(m.environment.kvmStats.tracefsHist, false, 'a source counts as available only if every session had it');
  assert.throws(() => mergeResults([]));
});

/** iperf3 3.12's text output (`-f M -i 0`), as Debian's prints it on a guest console. */
const IPERF_UP = `Connecting to host 169.254.40.1, port 5201\r
[  5] local 169.254.40.2 port 40000 connected to 169.254.40.1 port 5201\r
[ ID] Interval           Transfer     Bitrate         Retr  Cwnd\r
[  5]   0.00-10.00  sec  52.1 MBytes  5.21 MBytes/sec    0    110 KBytes       \r
- - - - - - - - - - - - - - - - - - - - - - - - -\r
[ ID] Interval           Transfer     Bitrate         Retr\r
[  5]   0.00-10.00  sec  52.1 MBytes  5.21 MBytes/sec    0             sender\r
[  5]   0.00-10.03  sec  51.9 MBytes  5.18 MBytes/sec                  receiver\r
\r
iperf Done.\r
`;
const IPERF_DOWN = IPERF_UP.replace('5.18 MBytes/sec                  receiver', '68.4 MBytes/sec                  receiver');

test('iperfRates: each test\'s receiver line between its markers; a cut-off or failed test gives nothing', () => {
  const text = `BENCH_IPERF_TX\r\n${IPERF_UP}BENCH_IPERF_RX\r\n${IPERF_DOWN}BENCH_NET_DONE\r\n`;
  assert.equal(iperfRates(text), { tx: 5.18, rx: 68.4 });
  assert.equal(iperfRates(`BENCH_IPERF_TX\r\n${IPERF_UP}BENCH_IPERF_RX\r\n[  5]   0.00-3.00  sec`), { tx: 5.18 }, 'the download was cut off');
  assert.equal(iperfRates(`BENCH_IPERF_TX\r\niperf3: error - unable to connect to server\r\nBENCH_IPERF_RX\r\n${IPERF_DOWN}BENCH_NET_DONE\r\n`), { rx: 68.4 });
  assert.equal(iperfRates(`cmdline: echo BENCH_IPERF_TX; echo BENCH_IPERF_RX; echo BENCH_NET_DONE\r\n`), {}, 'markers inside an echoed command line are not lines');
});

test.run();
