import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { ROOT } from '../helpers.js'

/** Debian's chromium: CI installs it (.ci/run); without it the browser tests are skipped with a note. */
export const CHROMIUM = '/usr/bin/chromium'
export const hasChromium = existsSync(CHROMIUM)
export const ARTIFACTS = join(ROOT, 'test/web/artifacts')

/** The newest modification time under a path (ms). */
function newest (path: string): number {
  const s = statSync(path)
  if (!s.isDirectory()) return s.mtimeMs
  return Math.max(s.mtimeMs, ...readdirSync(path).map(name => newest(join(path, name))))
}

const built = (): boolean => {
  const page = join(ROOT, 'web/dist/index.html')
  return existsSync(page) && statSync(page).mtimeMs >= Math.max(newest(join(ROOT, 'web/src')), newest(join(ROOT, 'web/build.mjs')), newest(join(ROOT, 'web/index.html')))
}

/**
 * Builds web/ into web/dist (what the broker serves), as `npm run build` does, unless it is up to date. Test
 * files run in parallel: one builds at a time (a directory made atomically is the lock), the others wait.
 */
export function buildDashboard (): void {
  if (built()) return
  const lock = join(ROOT, 'web/.build-lock')
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    try {
      mkdirSync(lock)
      break
    } catch {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100)
    }
  }
  try {
    if (!built()) execFileSync(process.execPath, [join(ROOT, 'web/build.mjs')], { cwd: ROOT, stdio: 'ignore', timeout: 60_000 })
  } finally {
    rmSync(lock, { recursive: true, force: true })
  }
}

export async function launch (): Promise<Browser> {
  const { chromium } = await import('playwright-core')
  return await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] })
}

/** A page that records console errors, page errors and every request it makes. */
export interface WatchedPage {
  page: Page
  context: BrowserContext
  errors: string[]
  requests: Array<{ url: string, at: number }>
}

export async function openPage (browser: Browser, options: { width?: number, height?: number, colorScheme?: 'light' | 'dark' } = {}): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: { width: options.width ?? 1280, height: options.height ?? 800 }, colorScheme: options.colorScheme ?? 'light' })
  const page = await context.newPage()
  const errors: string[] = []
  const requests: Array<{ url: string, at: number }> = []
  page.on('console', m => { if (m.type() === 'error') errors.push(m.text()) })
  page.on('pageerror', e => { errors.push(e.message) })
  page.on('request', r => { requests.push({ url: r.url(), at: Date.now() }) })
  page.setDefaultTimeout(20_000)
  return { page, context, errors, requests }
}

export async function screenshot (page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true })
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: false })
}
