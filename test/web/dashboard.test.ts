import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import mqtt from 'mqtt'
import type { Browser } from 'playwright-core'
import { startTestBroker, waitFor, type TestBroker } from '../helpers.js'
import { buildDashboard, hasChromium, launch, openPage, screenshot, type WatchedPage } from './browser.js'

// The dashboard in a real headless Chromium (Debian's chromium; .ci/run installs it). Every test ends with
// no console error on its page. Screenshots of each view go to test/web/artifacts/.
if (!hasChromium) console.warn('test/web: /usr/bin/chromium is missing (apt-get install chromium): the browser tests are skipped')
const suite = hasChromium ? describe : describe.skip

const json = async <T>(res: Response): Promise<T> => await res.json() as T
const post = async (broker: TestBroker, path: string, body: unknown): Promise<Response> =>
  await fetch(broker.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

suite('dashboard in Chromium', () => {
  let broker: TestBroker
  let browser: Browser
  const pages: WatchedPage[] = []

  const open = async (hash: string, options: Parameters<typeof openPage>[1] = {}, target: TestBroker = broker): Promise<WatchedPage> => {
    const w = await openPage(browser, options)
    pages.push(w)
    await w.page.goto(`${target.url}/${hash}`)
    return w
  }
  const done = async (w: WatchedPage): Promise<void> => {
    expect(w.errors, 'console errors').toEqual([])
    await w.context.close()
  }

  beforeAll(async () => {
    buildDashboard()
    broker = await startTestBroker()
    browser = await launch()
  }, 60_000)

  afterAll(async () => {
    for (const w of pages) await w.context.close().catch(() => {})
    await browser?.close()
    await broker?.stop()
  })

  it('overview: the counters move after an MQTT publish from a test client; one SSE stream, under 2 requests/s when idle', async () => {
    const w = await open('#/overview')
    const figure = w.page.locator('[data-figure="pubsub-in"] .value')
    await figure.waitFor()
    const before = Number(await figure.textContent())
    const client = await mqtt.connectAsync(broker.mqttUrl, { reconnectPeriod: 0 })
    try {
      for (let i = 0; i < 5; i++) await client.publishAsync('dash/overview', `m${i}`, { qos: 1 })
    } finally {
      await client.endAsync()
    }
    await waitFor(async () => Number(await figure.textContent()) >= before + 5, 8000, 'the overview counter to move')
    await screenshot(w.page, 'overview')
    // idle: the page's requests over the next 4 s (the counters come over the one open stream)
    const from = Date.now()
    await w.page.waitForTimeout(4000)
    const made = w.requests.filter(r => r.at >= from)
    expect(made.length, made.map(r => r.url).join('\n')).toBeLessThan(8)
    await done(w)
  })
})
