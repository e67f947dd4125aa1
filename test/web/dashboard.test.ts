import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import mqtt from 'mqtt'
import type { Browser } from 'playwright-core'
import { startTestBroker, tempDir, waitFor, type TestBroker } from '../helpers.js'
import { bearer, writeAuthFile } from '../protocols/http-auth-fixture.js'
import { buildDashboard, hasChromium, launch, openPage, screenshot, type WatchedPage } from './browser.js'

// The dashboard in a real headless Chromium (Debian's chromium; .ci/run installs it). Every test ends with
// no console error on its page. Screenshots of each view go to test/web/artifacts/.
if (!hasChromium) console.warn('test/web: /usr/bin/chromium is missing (apt-get install chromium): the browser tests are skipped')
const suite = hasChromium ? describe : describe.skip

const json = async <T>(res: Response): Promise<T> => await res.json() as T
const post = async (broker: TestBroker, path: string, body: unknown): Promise<Response> =>
  await fetch(broker.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

// generous bounds: the suite shares 2 cores with the other test files in CI
suite('dashboard in Chromium', { timeout: 90_000 }, () => {
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
    await waitFor(async () => Number(await figure.textContent()) >= before + 5, 20_000, 'the overview counter to move')
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
      await page.locator('input[name="publish-utf8"]').check()
      await page.getByRole('button', { name: 'Publish' }).click()
      const m = await got
      expect(m).toMatchObject({ topic: 'dash/pub/lamp', payload: '{"on":true}', qos: 1 })
      expect(m.properties).toMatchObject({ contentType: 'application/json', userProperties: { origin: 'dashboard' }, payloadFormatIndicator: true })
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

    // the live tail: a message appended now shows up
    await page.getByRole('button', { name: 'Follow' }).click()
    await page.getByText('following').waitFor()
    await append({ order: 'live' })
    await page.locator('tr[data-offset="6"]', { hasText: 'live' }).waitFor()
    await page.getByRole('button', { name: 'Stop' }).click()

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

  it('Store: create a key with a TTL while watching its prefix, remove the TTL, query a JSON-field index, delete the key', async () => {
    const w = await open('#/store')
    const { page } = w
    await page.locator('input[name="watch-prefix"]').fill('dash/new/')
    await page.getByRole('button', { name: 'Watch' }).click()
    await page.getByText('watching').waitFor()
    await page.getByRole('button', { name: 'New key' }).click()
    await page.locator('input[name="key"]').fill('dash/new/1')
    await page.locator('textarea[name="value"]').fill('{"country": "fr"}')
    await page.locator('input[name="ttl"]').fill('300')
    await page.getByRole('button', { name: 'Create', exact: true }).click()
    await page.locator('[data-ttl]', { hasText: 's left' }).waitFor()
    await page.locator('table.changes', { hasText: 'dash/new/1' }).waitFor()
    const ttl = async (): Promise<string | null> => (await fetch(`${broker.url}/v1/store/keys/dash/new/1`)).headers.get('tetra-ttl')
    expect(Number(await ttl())).toBeGreaterThan(200)
    await page.getByRole('button', { name: 'Remove TTL' }).click()
    await page.locator('[data-ttl]', { hasText: 'none' }).waitFor()
    expect(await ttl()).toBeNull()

    await page.locator('input[name="index-name"]').fill('dash-country')
    await page.locator('input[name="index-prefix"]').fill('dash/new/')
    await page.locator('input[name="index-field"]').fill('country')
    await page.getByRole('button', { name: 'Create index' }).click()
    await page.getByRole('button', { name: 'Query' }).click()
    await page.locator('input[name="index-value"]').fill('fr')
    await page.getByRole('button', { name: 'Find' }).click()
    await page.locator('ul.mono li', { hasText: 'dash/new/1' }).waitFor()

    // bytes that are not text show as a hex dump
    expect((await fetch(`${broker.url}/v1/store/keys/dash/new/bin`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: Buffer.from([0, 1, 2, 0xff, 0xfe]) })).status).toBe(200)
    await page.locator('input[name="prefix"]').fill('dash/new/')
    await page.getByRole('button', { name: 'List' }).click()
    await page.locator('tr[data-key="dash/new/bin"] a').click()
    await page.locator('pre.payload.hex', { hasText: '00 01 02 ff fe' }).waitFor()
    await page.locator('tr[data-key="dash/new/1"] a').click()
    await page.locator('.editor').getByRole('button', { name: 'Delete' }).click()
    await page.locator('input[name="confirm"]').fill('dash/new/1')
    await page.getByRole('button', { name: 'Delete key' }).click()
    await expect.poll(async () => (await fetch(`${broker.url}/v1/store/keys/dash/new/1`)).status).toBe(404)
    await page.locator('table.changes tr', { hasText: 'delete' }).waitFor()
    await done(w)
  })

  it('Queues and streams: create, change settings, delete after a confirmation naming them; a retained message cleared; an MQTT client disconnected', async () => {
    const w = await open('#/queues')
    const { page } = w
    await page.locator('input[name="new-queue"]').fill('dash-tmp')
    await page.getByRole('button', { name: 'Create' }).click()
    await page.waitForURL(/#\/queues\/dash-tmp$/)
    await page.locator('input[name="maxDeliveries"]').fill('7')
    await page.getByRole('button', { name: 'Save settings' }).click()
    await expect.poll(async () => (await json<{ settings: { maxDeliveries: number } }>(await fetch(`${broker.url}/v1/queues/dash-tmp`))).settings.maxDeliveries).toBe(7)
    await page.getByRole('button', { name: 'Delete', exact: true }).click()
    const confirm = page.getByRole('button', { name: 'Delete queue' })
    expect(await confirm.isDisabled()).toBe(true)
    await page.locator('input[name="confirm"]').fill('dash-tmp')
    await confirm.click()
    await page.waitForURL(/#\/queues$/)
    await expect.poll(async () => (await fetch(`${broker.url}/v1/queues/dash-tmp`)).status).toBe(404)

    await page.goto(`${broker.url}/#/streams`)
    await page.locator('input[name="new-stream"]').fill('dash-tmp-s')
    await page.getByRole('button', { name: 'Create' }).click()
    await page.waitForURL(/#\/streams\/dash-tmp-s$/)
    await page.locator('input[name="maxCount"]').fill('1000')
    await page.getByRole('button', { name: 'Save settings' }).click()
    await expect.poll(async () => (await json<{ settings: { maxCount?: number } }>(await fetch(`${broker.url}/v1/streams/dash-tmp-s`))).settings.maxCount).toBe(1000)
    await page.getByRole('button', { name: 'Delete', exact: true }).click()
    await page.locator('input[name="confirm"]').fill('dash-tmp-s')
    await page.getByRole('button', { name: 'Delete stream' }).click()
    await expect.poll(async () => (await fetch(`${broker.url}/v1/streams/dash-tmp-s`)).status).toBe(404)

    await post(broker, '/v1/pubsub/publish', { topic: 'dash/retained/door', payload: 'open', encoding: 'utf8', retain: true })
    const device = await mqtt.connectAsync(broker.mqttUrl, { clientId: 'dash-device', protocolVersion: 5, reconnectPeriod: 0 })
    const kicked = new Promise<number | undefined>(resolve => { device.on('disconnect', p => { resolve(p.reasonCode) }) })
    try {
      await page.goto(`${broker.url}/#/pubsub`)
      await page.locator('input[name="retained-filter"]').fill('dash/retained/#')
      await page.getByRole('button', { name: 'Show' }).click()
      await page.locator('tr[data-retained="dash/retained/door"]').getByRole('button', { name: 'Clear' }).click()
      await expect.poll(async () => (await json<{ messages: unknown[] }>(await fetch(`${broker.url}/v1/pubsub/retained?filter=dash%2Fretained%2F%23`))).messages.length).toBe(0)
      await page.locator('tr[data-client="dash-device"]').getByRole('button', { name: 'Disconnect' }).click()
      expect(await kicked).toBe(0x98)
    } finally {
      await device.endAsync(true)
    }
    await done(w)
  })

  it('deep links open every view; usable at phone width (no sideways scrolling) and in the dark theme', async () => {
    const views: Array<[string, string, string]> = [
      ['', 'Overview', '[data-figure="uptime"]'],
      ['#/overview', 'Overview', '[data-figure="uptime"]'],
      ['#/pubsub', 'Pub/Sub', 'text=Test client (MQTT over WebSocket)'],
      ['#/store', 'Store', 'input[name="prefix"]'],
      ['#/queues', 'Queues', 'tr[data-queue="dash-jobs"]'],
      ['#/queues/dash-jobs', 'Queues', '[data-figure="ready"]'],
      ['#/streams', 'Streams', 'tr[data-stream="dash-orders"]'],
      ['#/streams/dash-orders', 'Streams', '[data-figure="last"]']
    ]
    const w = await open('')
    for (const [hash, nav, marker] of views) {
      await w.page.goto(`${broker.url}/${hash}`)
      await w.page.locator(marker).first().waitFor()
      expect(await w.page.locator('nav a.active').textContent(), hash).toBe(nav)
    }
    await screenshot(w.page, 'stream')
    // the overview again, with the traffic of the tests before and a device connected (README's picture)
    const device = await mqtt.connectAsync(broker.mqttUrl, { clientId: 'sensor-1', reconnectPeriod: 0 })
    try {
      await w.page.goto(`${broker.url}/#/overview`)
      await w.page.locator('[data-figure="mqtt"]', { hasText: 'MQTT clients (TCP 1)' }).waitFor()
      await screenshot(w.page, 'overview-traffic')
    } finally {
      await device.endAsync()
    }
    await done(w)

    const phone = await open('#/queues/dash-jobs', { width: 390, height: 844, colorScheme: 'dark' })
    await phone.page.locator('[data-figure="ready"]').waitFor()
    expect(await phone.page.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe('rgb(13, 17, 23)')
    for (const hash of ['#/queues/dash-jobs', '#/overview', '#/store', '#/pubsub', '#/streams/dash-orders']) {
      await phone.page.goto(`${broker.url}/${hash}`)
      await phone.page.locator('main .card').first().waitFor()
      expect(await phone.page.evaluate(() => document.documentElement.scrollWidth), hash).toBeLessThanOrEqual(390)
    }
    await screenshot(phone.page, 'stream-phone-dark')
    await done(phone)
  })

  it('sign in with a user and password, then with a token that may only read: the write actions are absent, and refused by the API', async () => {
    const dir = tempDir('tetra-dash-auth-')
    const auth = await writeAuthFile(dir.dir, {
      users: [{ name: 'ada', password: 'ada-secret', roles: ['read'] }],
      tokens: [{ name: 'ops', roles: ['all'] }, { name: 'reader', roles: ['read'] }],
      roles: {
        all: [
          { resource: 'topic', pattern: '#', actions: ['publish', 'subscribe'] },
          { resource: 'store', pattern: '*', actions: ['read', 'write'] },
          { resource: 'queue', pattern: '*', actions: ['push', 'receive', 'admin'] },
          { resource: 'stream', pattern: '*', actions: ['append', 'read', 'admin'] },
          { resource: 'system', pattern: '*', actions: ['metrics', 'dashboard', 'admin'] }
        ],
        read: [
          { resource: 'topic', pattern: '#', actions: ['subscribe'] },
          { resource: 'store', pattern: '*', actions: ['read'] },
          { resource: 'queue', pattern: '*', actions: ['receive'] },
          { resource: 'stream', pattern: '*', actions: ['read'] },
          { resource: 'system', pattern: 'dashboard', actions: ['dashboard'] }
        ]
      }
    })
    const secured = await startTestBroker({ authFile: auth.file })
    try {
      const ops = { ...bearer(auth.tokens.ops), 'content-type': 'application/json' }
      await fetch(`${secured.url}/v1/queues/orders`, { method: 'PUT', headers: ops, body: '{}' })
      await fetch(`${secured.url}/v1/queues/orders/messages`, { method: 'POST', headers: ops, body: JSON.stringify({ payload: { id: 1 } }) })
      await fetch(`${secured.url}/v1/store/keys/config/site`, { method: 'PUT', headers: ops, body: JSON.stringify({ title: 'Tetra' }) })

      const w = await open('#/queues/orders', {}, secured)
      const { page } = w
      // a user and its password
      await page.locator('input[name="user"]').fill('ada')
      await page.locator('input[name="password"]').fill('ada-secret')
      await page.getByRole('button', { name: 'Sign in' }).click()
      await page.locator('[data-figure="ready"]').waitFor()
      expect(await page.locator('header.top .who').textContent()).toContain('ada')
      await page.getByRole('button', { name: 'Sign out' }).click()
      // a wrong token: the page says so
      await page.getByRole('tab', { name: 'Token' }).click()
      await page.locator('input[name="token"]').fill('not-a-token')
      await page.getByRole('button', { name: 'Sign in' }).click()
      await page.locator('.login .error').waitFor()
      await page.locator('input[name="token"]').fill(auth.tokens.reader)
      await page.getByRole('button', { name: 'Sign in' }).click()
      await page.locator('[data-figure="ready"]').waitFor()
      expect(await page.locator('header.top .who').textContent()).toContain('reader')
      await page.getByRole('button', { name: 'Peek' }).click()
      await page.locator('table.messages tr[data-id]').first().waitFor()
      for (const name of ['Purge', 'Delete', 'Push', 'Save settings', 'Redrive all']) expect(await page.getByRole('button', { name, exact: true }).count(), name).toBe(0)
      await page.goto(`${secured.url}/#/queues`)
      await page.locator('tr[data-queue="orders"]').waitFor()
      expect(await page.locator('input[name="new-queue"]').count()).toBe(0)
      await page.goto(`${secured.url}/#/store`)
      await page.getByRole('button', { name: 'List' }).click()
      await page.locator('tr[data-key="config/site"] a').click()
      await page.locator('[data-etag]').waitFor()
      expect(await page.locator('textarea[name="value"]').count()).toBe(0)
      expect(await page.getByRole('button', { name: 'New key' }).count()).toBe(0)
      expect(await page.getByRole('button', { name: 'Save', exact: true }).count()).toBe(0)
      await page.goto(`${secured.url}/#/pubsub`)
      await page.locator('text=MQTT clients').waitFor()
      expect(await page.getByRole('button', { name: 'Disconnect', exact: true }).count()).toBe(0)
      // the test client signs in to MQTT with the token too (its name as user, the token as password): it may subscribe, not publish
      await page.getByRole('button', { name: 'Connect', exact: true }).click()
      await page.locator('[data-state="connected"]').waitFor()
      expect(await page.getByRole('button', { name: 'Publish' }).count()).toBe(0)
      await screenshot(page, 'read-only-token')
      // what the page would send is refused by the broker: 403 with the resource and action named
      const refused = await page.evaluate(async () => {
        const c = JSON.parse(sessionStorage.getItem('tetra.credentials') ?? 'null') as { secret: string }
        const res = await fetch('/v1/queues/orders/messages', { method: 'DELETE', headers: { authorization: `Bearer ${c.secret}` } })
        return { status: res.status, body: await res.json() as { detail: string } }
      })
      expect(refused.status).toBe(403)
      expect(refused.body.detail).toBe('forbidden: queue "orders" admin')
      // the token is revoked (the auth file changes and is reloaded): the page goes back to its sign-in form
      await writeAuthFile(dir.dir, { tokens: [{ name: 'ops', roles: ['all'], token: auth.tokens.ops }], roles: { all: [{ resource: 'system', pattern: '*', actions: ['dashboard'] }] } })
      await page.locator('.login .error', { hasText: 'Signed out' }).waitFor({ timeout: 15_000 })
      await done(w, [401, 403])
    } finally {
      await secured.stop()
      dir.remove()
    }
  })

  it('--dashboard readonly: no write action in the page, and the page\'s writes are refused; --dashboard off: no page', async () => {
    const readonly = await startTestBroker({ dashboard: 'readonly' })
    try {
      await fetch(`${readonly.url}/v1/queues/jobs`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' })
      const w = await open('#/queues/jobs', {}, readonly)
      const { page } = w
      await page.locator('[data-figure="ready"]').waitFor()
      expect(await page.locator('.badge', { hasText: 'read-only' }).count()).toBe(1)
      for (const name of ['Purge', 'Delete', 'Push', 'Save settings']) expect(await page.getByRole('button', { name, exact: true }).count(), name).toBe(0)
      await page.goto(`${readonly.url}/#/pubsub`)
      await page.getByRole('button', { name: 'Connect', exact: true }).click()
      await page.locator('[data-state="connected"]').waitFor()
      expect(await page.getByRole('button', { name: 'Publish' }).count()).toBe(0)
      const status = await page.evaluate(async () => (await fetch('/v1/queues/jobs/messages', { method: 'POST', headers: { 'tetra-dashboard': '1', 'content-type': 'application/json' }, body: '{"payload":1}' })).json() as Promise<{ status: number, detail: string }>)
      expect(status).toMatchObject({ status: 403, detail: expect.stringContaining('read-only') })
      await done(w, [403])
    } finally {
      await readonly.stop()
    }
    const off = await startTestBroker({ dashboard: 'off' })
    try {
      expect((await fetch(`${off.url}/`)).status).toBe(404)
      expect((await fetch(`${off.url}/v1/dashboard`)).status).toBe(404)
      expect((await fetch(`${off.url}/healthz`)).status).toBe(200)
    } finally {
      await off.stop()
    }
  })

  it('keeps working across a broker restart, and says so', async () => {
    const dir = tempDir('tetra-dash-restart-')
    let first: TestBroker | undefined = await startTestBroker({}, dir.dir)
    let second: TestBroker | undefined
    try {
      const port = first.httpAddress.port
      const w = await open('#/overview', {}, first)
      const { page } = w
      await page.locator('.live', { hasText: 'live' }).waitFor()
      await first.close()
      first = undefined
      await page.locator('.banner.down').waitFor({ timeout: 15_000 })
      second = await startTestBroker({ httpPort: port }, dir.dir)
      await page.locator('.banner.back', { hasText: 'Reconnected' }).waitFor({ timeout: 20_000 })
      await page.locator('.live', { hasText: 'live' }).waitFor()
      // Chromium logs the refused connections of the reconnect attempts
      const refused = (e: string): boolean => e.includes('ERR_CONNECTION_REFUSED') || e.includes('Failed to load resource')
      w.errors.splice(0, w.errors.length, ...w.errors.filter(e => !refused(e)))
      await done(w)
    } finally {
      await first?.close()
      await second?.close()
      dir.remove()
    }
  })
})
