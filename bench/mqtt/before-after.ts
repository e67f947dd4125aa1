/**
 * Compares two result files of `npm run bench -- mqtt`: the broker before a change and after, each measured
 * with the same harness beside the same baselines. Prints one markdown table: per scenario Tetra's figure
 * before and after, after ÷ before, and Tetra's median ratio to each baseline in both runs (from the rows'
 * `ratios`, i.e. medians of per-round ratios in that run).
 *
 *   npx tsx bench/mqtt/before-after.ts bench/results/<before>.json bench/results/<after>.json
 */
import { readFileSync } from 'node:fs'
import type { BenchRow } from '../lib/types.js'

interface Report { date: string, rows: BenchRow[] }

const BASELINES = ['nats-server', 'mosquitto', 'aedes', 'tetra (3.1.1)']

function read (file: string): Report {
  return JSON.parse(readFileSync(file, 'utf8')) as Report
}

function fmtRate (n: number | undefined): string {
  if (n === undefined || Number.isNaN(n)) return '–'
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`
  return n.toFixed(0)
}

/** The figure a scenario is judged by: p99 for latency, the rate otherwise. */
function figure (row: BenchRow | undefined): { text: string, value: number | undefined, lowerIsBetter: boolean } {
  if (row === undefined) return { text: '–', value: undefined, lowerIsBetter: false }
  if (row.scenario.includes('latency')) {
    return { text: row.p99Ms === undefined ? '–' : `p99 ${row.p99Ms.toFixed(2)} ms (p50 ${row.p50Ms?.toFixed(2) ?? '?'})`, value: row.p99Ms, lowerIsBetter: true }
  }
  return { text: row.rate === undefined ? (row.note?.match(/FAILED[^;]*/)?.[0] ?? '–') : `${fmtRate(row.rate)} ${row.unit ?? ''}`.trim(), value: row.rate, lowerIsBetter: false }
}

function ratioText (row: BenchRow | undefined, base: string): string {
  if (row?.ratios === undefined) return '–'
  const entry = Object.entries(row.ratios).find(([k]) => k === base || k === `${base} p99`)
  return entry === undefined ? '–' : entry[1].toFixed(2)
}

function main (): void {
  const [beforeFile, afterFile] = process.argv.slice(2)
  if (beforeFile === undefined || afterFile === undefined) throw new Error('usage: before-after.ts <before.json> <after.json>')
  const before = read(beforeFile)
  const after = read(afterFile)
  const tetraOf = (r: Report, scenario: string): BenchRow | undefined => r.rows.find(x => x.scenario === scenario && x.target === 'tetra')
  const scenarios = [...new Set([...before.rows, ...after.rows].filter(r => r.group === 'mqtt' && r.target === 'tetra').map(r => r.scenario))]
  const header = ['scenario', 'Tetra before', 'Tetra after', 'after ÷ before', ...BASELINES.map(b => `÷ ${b} (before → after)`)]
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`]
  for (const scenario of scenarios) {
    const b = tetraOf(before, scenario)
    const a = tetraOf(after, scenario)
    const fb = figure(b)
    const fa = figure(a)
    const change = fb.value !== undefined && fa.value !== undefined ? (fa.lowerIsBetter ? fb.value / fa.value : fa.value / fb.value).toFixed(2) : '–'
    const ratios = BASELINES.map(base => `${ratioText(b, base)} → ${ratioText(a, base)}`)
    lines.push(`| ${scenario} | ${fb.text} | ${fa.text} | ${change} | ${ratios.join(' | ')} |`)
  }
  process.stdout.write(`before: ${beforeFile} (${before.date})\nafter: ${afterFile} (${after.date})\n\n${lines.join('\n')}\n`)
}

main()
