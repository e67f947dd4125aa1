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
  /** No console error; `expected`: the API answers the test provokes (Chromium logs every 4xx answer of a fetch). */
  const done = async (w: WatchedPage, expected: number[] = []): Promise<void> => {
    const provoked = (e: string): boolean => expected.some(status => e.startsWith(`Failed to load resource: the server responded with a status of ${status} `))
    expect(w.errors.filter(e => !provoked(e)), 'console errors').toEqual([])
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

  it('Pub/Sub: subscribe to a filter in the page and see a message published over HTTP appear, in the test client and the topic tree', async () => {
    const w = await open('#/pubsub')
    const { page } = w
    await page.getByRole('button', { name: 'Connect', exact: true }).click()
    await page.locator('[data-state="connected"]').waitFor()
    await page.locator('input[name="subscribe-filter"]').fill('dash/sub/#')
    await page.getByRole('button', { name: 'Subscribe' }).click()
    await page.getByText('subscribed: dash/sub/#').waitFor()
    const res = await post(broker, '/v1/pubsub/publish', { topic: 'dash/sub/kitchen', payload: 'hello from HTTP', qos: 1 })
    expect(res.status).toBe(200)
    await page.locator('[data-received="dash/sub/kitchen"]', { hasText: 'hello from HTTP' }).waitFor()
    await page.locator('[data-topic="dash/sub/kitchen"]').waitFor()
    // the client list shows the page's own MQTT connection, over WebSocket
    await page.locator('tr[data-client^="dashboard-"]', { hasText: 'WebSocket' }).waitFor()
    await screenshot(page, 'pubsub')
    await done(w)
  })

  it('Pub/Sub: publish from the page (MQTT 5, with properties) and receive it with MQTT.js', async () => {
    const listener = await mqtt.connectAsync(broker.mqttUrl, { protocolVersion: 5, reconnectPeriod: 0 })
    try {
      await listener.subscribeAsync('dash/pub/#', { qos: 1 })
      const got = new Promise<{ topic: string, payload: string, properties: Record<string, unknown> | undefined, qos: number }>(resolve => {
        listener.on('message', (topic, payload, packet) => { resolve({ topic, payload: payload.toString(), properties: packet.properties as Record<string, unknown> | undefined, qos: packet.qos }) })
      })
      const w = await open('#/pubsub')
      const { page } = w
      await page.getByRole('button', { name: 'Connect', exact: true }).click()
      await page.locator('[data-state="connected"]').waitFor()
      await page.locator('input[name="publish-topic"]').fill('dash/pub/lamp')
      await page.locator('textarea[name="publish-payload"]').fill('{"on":true}')
      await page.locator('select[name="publish-qos"]').selectOption('1')
      await page.getByText('MQTT 5 properties').click()
      await page.locator('input[name="publish-content-type"]').fill('application/json')
      await page.locator('textarea[name="publish-user-properties"]').fill('origin=dashboard')
      await page.getByRole('button', { name: 'Publish' }).click()
      const m = await got
      expect(m).toMatchObject({ topic: 'dash/pub/lamp', payload: '{"on":true}', qos: 1 })
      expect(m.properties).toMatchObject({ contentType: 'application/json', userProperties: { origin: 'dashboard' } })
      await done(w)
    } finally {
      await listener.endAsync()
    }
  })

  it('Store: edit a key in the page and read it back over REST; a change meanwhile gives the conflict message', async () => {
    const put = async (value: unknown): Promise<Response> => await fetch(`${broker.url}/v1/store/keys/dash/user/1`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) })
    expect((await put({ name: 'Ada' })).status).toBe(200)
    const w = await open('#/store')
    const { page } = w
    await page.locator('input[name="prefix"]').fill('dash/')
    await page.getByRole('button', { name: 'List' }).click()
    await page.locator('tr[data-key="dash/user/1"] a').click()
    const editor = page.locator('textarea[name="value"]')
    await expect.poll(async () => await editor.inputValue()).toContain('Ada')
    await editor.fill('{"name": "Grace"}')
    await page.getByRole('button', { name: 'Save' }).click()
    await expect.poll(async () => await json<{ name: string }>(await fetch(`${broker.url}/v1/store/keys/dash/user/1`))).toEqual({ name: 'Grace' })
    await expect.poll(async () => await editor.inputValue()).toContain('Grace')
    await screenshot(page, 'store')

    // someone else writes while the page holds the old ETag: the page reports it, the other value stays
    expect((await put({ name: 'Hopper' })).status).toBe(200)
    await editor.fill('{"name": "Lovelace"}')
    await page.getByRole('button', { name: 'Save' }).click()
    await page.locator('.conflict', { hasText: 'changed since you opened it' }).waitFor()
    expect(await json<{ name: string }>(await fetch(`${broker.url}/v1/store/keys/dash/user/1`))).toEqual({ name: 'Hopper' })
    await done(w, [412])
  })

  it('Queues: a dead letter with its reason is redriven from the page; peek shows it ready without leasing it', async () => {
    expect((await fetch(`${broker.url}/v1/queues/dash-jobs`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ maxDeliveries: 3 }) })).status).toBe(201)
    await post(broker, '/v1/queues/dash-jobs/messages', { payload: { job: 'resize', id: 7 } })
    await post(broker, '/v1/queues/dash-jobs/messages', { payload: { job: 'resize', id: 8 } })
    const got = await json<{ messages: Array<{ receipt: string }> }>(await post(broker, '/v1/queues/dash-jobs/receive', { max: 1 }))
    expect((await post(broker, '/v1/queues/dash-jobs/nack', { receipts: [got.messages[0].receipt], dead: true, reason: 'image too large' })).status).toBe(200)

    const w = await open('#/queues')
    const { page } = w
    await page.locator('tr[data-queue="dash-jobs"]').waitFor()
    await screenshot(page, 'queues')
    await page.locator('tr[data-queue="dash-jobs"] a').click()
    await page.waitForURL(/#\/queues\/dash-jobs$/)
    const dead = page.locator('.dead tr[data-id]')
    await dead.first().waitFor()
    await expect.poll(async () => await dead.count()).toBe(1)
    await expect.poll(async () => await page.locator('.dead').textContent()).toContain('image too large')
    await page.getByRole('button', { name: 'Peek' }).click()
    await page.locator('table.messages tr[data-id]', { hasText: '"id": 8' }).first().waitFor()
    await screenshot(page, 'queue')
    await dead.first().getByRole('button', { name: 'Redrive' }).click()
    await expect.poll(async () => (await json<{ stats: { dead: number, ready: number, leased: number } }>(await fetch(`${broker.url}/v1/queues/dash-jobs`))).stats).toEqual(expect.objectContaining({ dead: 0, ready: 2, leased: 0 }))
    await page.locator('.dead', { hasText: 'None.' }).waitFor()
    await done(w)
  })

  it('Streams: browse from an offset and from a time; seek a consumer group forward, and back (re-created after a confirmation)', async () => {
    const append = async (payload: unknown): Promise<void> => { expect((await post(broker, '/v1/streams/dash-orders/messages', { payload })).status).toBeLessThan(300) }
    for (let i = 0; i < 3; i++) await append({ order: i })
    const read = async (): Promise<Array<{ offset: number, timestamp: number }>> => (await json<{ messages: Array<{ offset: number, timestamp: number }> }>(await fetch(`${broker.url}/v1/streams/dash-orders/messages?from=start`))).messages
    // a time strictly after the first three messages
    const cut = (await read())[2].timestamp + 1
    await waitFor(() => Date.now() > cut, 2000, 'the clock to pass the cut')
    for (let i = 3; i < 6; i++) await append({ order: i })
    expect((await fetch(`${broker.url}/v1/streams/dash-orders/groups/billing`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ from: 'start' }) })).status).toBe(201)
    await post(broker, '/v1/streams/dash-orders/groups/billing/commit', { offset: 2 })

    const w = await open('#/streams/dash-orders')
    const { page } = w
    const rows = page.locator('.browse tr[data-offset]')
    await page.locator('input[name="from"]').fill('4')
    await page.getByRole('button', { name: 'Read' }).click()
    await expect.poll(async () => await rows.evaluateAll(trs => trs.map(tr => Number(tr.getAttribute('data-offset'))))).toEqual([4, 5])
    await page.locator('select[name="by"]').selectOption('time')
    await page.locator('input[name="time"]').fill(String(cut))
    await page.getByRole('button', { name: 'Read' }).click()
    await expect.poll(async () => await rows.evaluateAll(trs => trs.map(tr => Number(tr.getAttribute('data-offset'))))).toEqual([3, 4, 5])

    const committed = async (): Promise<number> => (await json<{ committed: number }>(await fetch(`${broker.url}/v1/streams/dash-orders/groups/billing`))).committed
    const group = page.locator('tr[data-group="billing"]')
    await group.getByRole('button', { name: 'Seek' }).click()
    await page.locator('input[name="seek-to"]').fill('5')
    await page.locator('form.seek').getByRole('button', { name: 'Seek' }).click()
    await expect.poll(committed).toBe(5)
    await page.locator('tr[data-group="billing"] [data-col="committed"]', { hasText: '5' }).waitFor()
    await screenshot(page, 'streams')
    // back to a time before the committed offset: the committed offset never moves back, so the page re-creates the group
    await group.getByRole('button', { name: 'Seek' }).click()
    await page.locator('select[name="seek-by"]').selectOption('time')
    await page.locator('input[name="seek-to"]').fill(String(cut))
    await page.locator('form.seek').getByRole('button', { name: 'Seek' }).click()
    await page.locator('input[name="confirm"]').fill('billing')
    await page.getByRole('button', { name: 'Re-create the group there' }).click()
    await expect.poll(committed).toBe(3)
    await done(w, [409])
  })
})
