import { build } from 'esbuild'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROOT, startTestBroker, type TestBroker } from '../helpers.js'
import { hasChromium, launch } from './browser.js'

/**
 * tetra/client in a real headless Chromium: the library bundled for browsers (fetch, ReadableStream, no
 * Node API) on a page of the broker's origin; publish/subscribe over SSE and over MQTT on WebSocket
 * (MQTT.js's browser build), and a store watch. Skipped with a note when /usr/bin/chromium is missing.
 */

let broker: TestBroker
let browser: Browser
let page: Page

if (!hasChromium) console.warn('test/web/client-browser.test.ts: /usr/bin/chromium is missing; the browser tests of tetra/client are skipped')

describe.skipIf(!hasChromium)('tetra/client in headless Chromium', () => {
  beforeAll(async () => {
    broker = await startTestBroker()
    const bundle = await build({ entryPoints: [`${ROOT}/src/client/index.ts`], bundle: true, format: 'iife', globalName: 'TetraClient', platform: 'browser', target: 'es2022', write: false })
    browser = await launch()
    // the dashboard's Content-Security-Policy forbids inline scripts; this page injects the bundle as one
    const context = await browser.newContext({ bypassCSP: true })
    page = await context.newPage()
    page.setDefaultTimeout(20_000)
    await page.goto(`${broker.url}/healthz`)
    await page.addScriptTag({ content: bundle.outputFiles[0].text })
  }, 60_000)

  afterAll(async () => {
    await browser?.close()
    await broker?.stop()
  })

  it('publishes and receives over SSE with MQTT 5 properties', async () => {
    const got = await page.evaluate(async () => {
      const { Tetra } = (window as unknown as { TetraClient: typeof import('../../src/client/index.js') }).TetraClient
      const tetra = new Tetra({ url: location.origin })
      const controller = new AbortController()
      const messages: unknown[] = []
      const reading = (async () => {
        try {
          for await (const m of tetra.pubsub.subscribe('browser/#', { signal: controller.signal })) { messages.push(m); break }
        } catch {}
      })()
      for (let i = 0; i < 100 && messages.length === 0; i++) {
        await tetra.pubsub.publish('browser/a', { hello: 'world' }, { userProperties: { from: 'chromium' }, correlationData: new Uint8Array([255, 1]) })
        await new Promise(resolve => setTimeout(resolve, 30))
      }
      await reading
      controller.abort()
      const m = messages[0] as { topic: string, payload: unknown, userProperties: unknown, correlationData: Uint8Array }
      return { topic: m.topic, payload: m.payload, userProperties: m.userProperties, correlation: Array.from(m.correlationData) }
    })
    expect(got).toEqual({ topic: 'browser/a', payload: { hello: 'world' }, userProperties: { from: 'chromium' }, correlation: [255, 1] })
  })

  it('subscribes over MQTT on WebSocket (MQTT.js browser build)', async () => {
    const got = await page.evaluate(async (wsUrl) => {
      const { Tetra } = (window as unknown as { TetraClient: typeof import('../../src/client/index.js') }).TetraClient
      const tetra = new Tetra({ url: location.origin })
      const iterator = tetra.pubsub.subscribe('ws/#', { mqtt: { url: wsUrl } })
      let first: { topic: string, payload: unknown } | undefined
      const reading = (async () => { for await (const m of iterator) { first = m; break } })()
      for (let i = 0; i < 100 && first === undefined; i++) {
        await tetra.pubsub.publish('ws/x', new Uint8Array([1, 2, 3]))
        await new Promise(resolve => setTimeout(resolve, 50))
      }
      await reading
      return { topic: first?.topic, payload: Array.from(first?.payload as Uint8Array) }
    }, broker.wsUrl)
    expect(got).toEqual({ topic: 'ws/x', payload: [1, 2, 3] })
  })

  it('watches the store and reads what it set', async () => {
    const got = await page.evaluate(async () => {
      const { Tetra } = (window as unknown as { TetraClient: typeof import('../../src/client/index.js') }).TetraClient
      const tetra = new Tetra({ url: location.origin })
      const controller = new AbortController()
      const events: Array<{ type: string, key: string, value?: unknown }> = []
      const reading = (async () => {
        try {
          for await (const e of tetra.store.watch({ prefix: 'bw/', values: true, signal: controller.signal })) {
            events.push(e)
            if (e.type === 'delete') break
          }
        } catch {}
      })()
      for (let i = 0; i < 100 && events.length === 0; i++) {
        await tetra.store.set('bw/a', { n: i })
        await new Promise(resolve => setTimeout(resolve, 30))
      }
      await tetra.store.set('bw/bytes', new Uint8Array([0, 200]))
      const bytes = await tetra.store.get('bw/bytes') as Uint8Array
      await tetra.store.delete('bw/a')
      await reading
      controller.abort()
      return { first: events[0], last: events.at(-1), bytes: Array.from(bytes) }
    })
    expect(got.first).toMatchObject({ type: 'set', key: 'bw/a', value: { n: expect.any(Number) } })
    expect(got.last).toMatchObject({ type: 'delete', key: 'bw/a' })
    expect(got.bytes).toEqual([0, 200])
  })
})
