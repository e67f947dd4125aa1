import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { cpus, totalmem } from 'node:os'
import { scenarios } from './scenarios/index.js'
import { renderTable } from './lib/table.js'
import { ROOT } from './lib/process.js'
import type { BenchRow } from './lib/types.js'

/**
 * `npm run bench` runs every scenario; `npm run bench -- <name|group> ...` only those; `--quick` shortens
 * each run. Progress goes to stderr, the table to stdout, and the rows as JSON to bench/results/.
 */
async function main (): Promise<void> {
  const args = process.argv.slice(2)
  const quick = args.includes('--quick')
  const wanted = args.filter(a => !a.startsWith('--'))
  const selected = scenarios.filter(s => wanted.length === 0 || wanted.includes(s.name) || wanted.includes(s.group))
  if (selected.length === 0) {
    process.stderr.write(`no scenario matches ${wanted.join(' ')}; known: ${scenarios.map(s => `${s.group}/${s.name}`).join(', ')}\n`)
    process.exit(2)
  }
  process.stderr.write('building (npm run build)...\n')
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' })
  const rows: BenchRow[] = []
  const started = Date.now()
  for (const [i, scenario] of selected.entries()) {
    const label = `[${i + 1}/${selected.length}] ${scenario.group}/${scenario.name}`
    process.stderr.write(`${label} ...\n`)
    const progress = (message: string): void => { process.stderr.write(`  ${label}: ${message}\n`) }
    try {
      const result = await scenario.run({ progress, quick })
      rows.push(...result)
    } catch (err) {
      process.stderr.write(`  ${label} FAILED: ${(err as Error).stack ?? String(err)}\n`)
      rows.push({ group: scenario.group, scenario: scenario.name, target: 'tetra', note: `failed: ${(err as Error).message}` })
    }
  }
  const table = renderTable(rows)
  process.stdout.write(table + '\n')
  const dir = join(ROOT, 'bench/results')
  mkdirSync(dir, { recursive: true })
  const report = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    memoryGb: Math.round(totalmem() / 2 ** 30),
    quick,
    seconds: Math.round((Date.now() - started) / 1000),
    rows
  }
  const file = join(dir, `bench-${report.date.replace(/[:.]/g, '-')}.json`)
  writeFileSync(file, JSON.stringify(report, null, 2))
  writeFileSync(join(dir, 'latest.json'), JSON.stringify(report, null, 2))
  process.stderr.write(`results written to ${file}\n`)
}

void main()
