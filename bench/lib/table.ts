import type { BenchRow } from './types.js'

function fmtRate (n: number | undefined): string {
  if (n === undefined || Number.isNaN(n)) return ''
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`
  return n.toFixed(0)
}

function fmtMs (n: number | undefined): string {
  return n === undefined || Number.isNaN(n) ? '' : n < 10 ? n.toFixed(3) : n.toFixed(1)
}

/** The one table `npm run bench` prints (markdown, so it can go into README as is). */
export function renderTable (rows: BenchRow[]): string {
  const header = ['group', 'scenario', 'target', 'rate', 'unit', 'ratio', 'p50 ms', 'p99 ms', 'p99.9 ms', 'delivered/published', 'peak RSS MB', 'note']
  const body = rows.map(r => [
    r.group,
    r.scenario,
    r.target,
    fmtRate(r.rate),
    r.unit ?? '',
    r.ratios === undefined ? '' : Object.entries(r.ratios).map(([k, v]) => `${v.toFixed(2)}x ${k}`).join(', '),
    fmtMs(r.p50Ms),
    fmtMs(r.p99Ms),
    fmtMs(r.p999Ms),
    r.delivered === undefined ? '' : `${r.delivered}/${r.published ?? '?'}`,
    r.peakRssMb === undefined ? '' : r.peakRssMb.toFixed(0),
    r.note ?? ''
  ])
  const lines = [header, ...body].map(cols => `| ${cols.join(' | ')} |`)
  lines.splice(1, 0, `|${header.map(() => '---').join('|')}|`)
  return lines.join('\n')
}
