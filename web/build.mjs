// Builds the dashboard: web/src -> web/dist (index.html and content-hashed files under assets/), run by
// `npm run build`. Everything the page loads is in there: no CDN, no remote font.
import { build } from 'esbuild'
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, readdirSync, statSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const out = join(here, 'dist')
// built aside, then moved into place: a broker starting meanwhile reads the old files or the new, never half
const work = join(here, `.dist-${process.pid}`)

export async function buildDashboard ({ quiet = false } = {}) {
  rmSync(work, { recursive: true, force: true })
  mkdirSync(join(work, 'assets'), { recursive: true })
  const result = await build({
    entryPoints: { app: join(here, 'src/main.tsx') },
    outdir: join(work, 'assets'),
    bundle: true,
    splitting: true,
    format: 'esm',
    minify: true,
    target: ['chrome110', 'firefox115', 'safari16'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    entryNames: '[name]-[hash]',
    chunkNames: '[name]-[hash]',
    assetNames: '[name]-[hash]',
    metafile: true,
    legalComments: 'none',
    logLevel: 'warning'
  })
  const outputs = Object.keys(result.metafile.outputs).map(p => p.split('/').pop())
  const js = outputs.find(f => f.startsWith('app-') && f.endsWith('.js'))
  const css = outputs.find(f => f.startsWith('app-') && f.endsWith('.css'))
  const html = readFileSync(join(here, 'index.html'), 'utf8').replace('%JS%', js).replace('%CSS%', css)
  writeFileSync(join(work, 'index.html'), html)
  let raw = 0
  let gzipped = 0
  for (const f of readdirSync(join(work, 'assets'))) {
    const body = readFileSync(join(work, 'assets', f))
    raw += statSync(join(work, 'assets', f)).size
    gzipped += gzipSync(body, { level: 9 }).length
  }
  gzipped += gzipSync(html).length
  rmSync(out, { recursive: true, force: true })
  renameSync(work, out)
  if (!quiet) console.log(`dashboard: web/dist, ${(raw / 1024).toFixed(0)} KB, ${(gzipped / 1024).toFixed(0)} KB gzipped`)
  return { raw, gzipped }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  buildDashboard().catch(err => { console.error(err); process.exit(1) })
}
