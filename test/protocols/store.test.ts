import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openSse, startTestBroker, waitFor, type TestBroker } from '../helpers.js'
import { revisionText } from '../../protocols/http/routes/store.js'

let broker: TestBroker
let small: TestBroker
beforeAll(async () => {
  broker = await startTestBroker()
  small = await startTestBroker({ storeMaxValue: 1024, storeMaxMemory: 2048, storeEviction: 'none', storeWatchBacklog: 5 })
})
afterAll(async () => {
  await broker.stop()
  await small.stop()
})

const keyUrl = (key: string, b: TestBroker = broker): string => `${b.url}/v1/store/keys/${key}`
const json = (body: unknown, method = 'POST'): RequestInit => ({ method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

async function expectProblem (res: Response, status: number): Promise<Record<string, unknown>> {
  expect(res.status).toBe(status)
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/)
  const body = await res.json() as Record<string, unknown>
  expect(body).toMatchObject({ status, type: expect.any(String), title: expect.any(String), detail: expect.any(String) })
  return body
}

describe('store over HTTP: keys', () => {
  it('PUT stores any body byte for byte with its content type; GET returns it with ETag', async () => {
    const bytes = Buffer.from([0, 1, 2, 250, 255, 10, 13])
    let res = await fetch(keyUrl('bin/blob'), { method: 'PUT', body: bytes, headers: { 'content-type': 'image/png' } })
    expect(res.status).toBe(200)
    const etag = res.headers.get('etag')!
    expect(etag).toMatch(/^"\d+"$/)
    expect(await res.json()).toEqual({ key: 'bin/blob', etag, size: bytes.length })
    res = await fetch(keyUrl('bin/blob'))
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('image/png')
    expect(res.headers.get('etag')).toBe(etag)
    expect(res.headers.get('tetra-ttl')).toBeNull()
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true)

    await fetch(keyUrl('doc'), { method: 'PUT', body: '{"a":[1,2]}', headers: { 'content-type': 'application/json' } })
    res = await fetch(keyUrl('doc'))
    expect(res.headers.get('content-type')).toMatch(/^application\/json/)
    expect(await res.text()).toBe('{"a":[1,2]}')

    // no content type: octet-stream; empty body: empty value
    await fetch(keyUrl('raw'), { method: 'PUT', body: new Uint8Array([7]) })
    expect((await fetch(keyUrl('raw'))).headers.get('content-type')).toBe('application/octet-stream')
    await fetch(keyUrl('empty'), { method: 'PUT' })
    res = await fetch(keyUrl('empty'))
    expect(res.status).toBe(200)
    expect((await res.arrayBuffer()).byteLength).toBe(0)
  })

  it('keys may hold slashes, escapes and any Unicode', async () => {
    for (const key of ['a/b/c', 'sp ace', 'ünï/cødé', 'q?x=1#h', '%41']) {
      const res = await fetch(keyUrl(encodeURIComponent(key).replace(/%2F/g, '/')), { method: 'PUT', body: key })
      expect(res.status, key).toBe(200)
      expect((await res.json() as { key: string }).key).toBe(key)
      expect(await (await fetch(keyUrl(encodeURIComponent(key)))).text()).toBe(key)
    }
  })

  it('404 for a missing key; 304 on If-None-Match; HEAD works', async () => {
    await expectProblem(await fetch(keyUrl('nothing/here')), 404)
    const put = await fetch(keyUrl('cached'), { method: 'PUT', body: 'v' })
    const etag = put.headers.get('etag')!
    let res = await fetch(keyUrl('cached'), { headers: { 'if-none-match': etag } })
    expect(res.status).toBe(304)
    expect(res.headers.get('etag')).toBe(etag)
    res = await fetch(keyUrl('cached'), { headers: { 'if-none-match': '"1"' } })
    expect(res.status).toBe(200)
    res = await fetch(keyUrl('cached'), { method: 'HEAD' })
    expect(res.status).toBe(200)
    expect(res.headers.get('etag')).toBe(etag)
  })

  it('conditional PUT: If-None-Match: *, If-Match, ifExists; 412 as problem+json', async () => {
    let res = await fetch(keyUrl('cas'), { method: 'PUT', body: 'v1', headers: { 'if-none-match': '*' } })
    expect(res.status).toBe(200)
    const etag1 = res.headers.get('etag')!
    await expectProblem(await fetch(keyUrl('cas'), { method: 'PUT', body: 'v2', headers: { 'if-none-match': '*' } }), 412)
    await expectProblem(await fetch(keyUrl('cas'), { method: 'PUT', body: 'v2', headers: { 'if-match': '"12345"' } }), 412)
    await expectProblem(await fetch(keyUrl('cas-missing'), { method: 'PUT', body: 'v', headers: { 'if-match': etag1 } }), 412)
    await expectProblem(await fetch(keyUrl('cas-missing') + '?ifExists=true', { method: 'PUT', body: 'v' }), 412)
    await expectProblem(await fetch(keyUrl('cas-missing'), { method: 'PUT', body: 'v', headers: { 'if-match': '*' } }), 412)
    await expectProblem(await fetch(keyUrl('cas'), { method: 'PUT', body: 'v', headers: { 'if-none-match': etag1 } }), 412)
    expect(await (await fetch(keyUrl('cas'))).text()).toBe('v1')
    res = await fetch(keyUrl('cas'), { method: 'PUT', body: 'v3', headers: { 'if-match': `"999", ${etag1}` } })
    expect(res.status).toBe(200)
    const etag3 = res.headers.get('etag')!
    expect(etag3).not.toBe(etag1)
    res = await fetch(keyUrl('cas') + '?ifExists=true', { method: 'PUT', body: 'v4' })
    expect(res.status).toBe(200)
    expect(await (await fetch(keyUrl('cas'))).text()).toBe('v4')
  })

  it('TTL: ?ttl= sets it (fractions allowed), Tetra-TTL shows it, a PUT without ttl clears it unless keepTtl', async () => {
    await fetch(keyUrl('ttl/a') + '?ttl=100.5', { method: 'PUT', body: 'v' })
    let res = await fetch(keyUrl('ttl/a'))
    const left = Number(res.headers.get('tetra-ttl'))
    expect(left).toBeGreaterThan(90)
    expect(left).toBeLessThanOrEqual(100.5)
    await fetch(keyUrl('ttl/a') + '?keepTtl=true', { method: 'PUT', body: 'w' })
    res = await fetch(keyUrl('ttl/a'))
    expect(Number(res.headers.get('tetra-ttl'))).toBeGreaterThan(90)
    expect(await res.text()).toBe('w')
    await fetch(keyUrl('ttl/a'), { method: 'PUT', body: 'x' })
    expect((await fetch(keyUrl('ttl/a'))).headers.get('tetra-ttl')).toBeNull()
    await expectProblem(await fetch(keyUrl('ttl/a') + '?ttl=0', { method: 'PUT', body: 'v' }), 400)
    await expectProblem(await fetch(keyUrl('ttl/a') + '?ttl=-1', { method: 'PUT', body: 'v' }), 400)
    await expectProblem(await fetch(keyUrl('ttl/a') + '?ttl=abc', { method: 'PUT', body: 'v' }), 400)
    await expectProblem(await fetch(keyUrl('ttl/a') + '?ttl=5&keepTtl=true', { method: 'PUT', body: 'v' }), 400)
  })

  it('an expired key is a 404', async () => {
    await fetch(keyUrl('ttl/short') + '?ttl=0.05', { method: 'PUT', body: 'v' })
    await waitFor(async () => (await fetch(keyUrl('ttl/short'))).status === 404, 5000, 'expiry')
    await expectProblem(await fetch(keyUrl('ttl/short')), 404)
  })

  it('POST /ttl changes or removes the TTL; 404 when missing; 400 on bad bodies', async () => {
    await fetch(keyUrl('ttl/b'), { method: 'PUT', body: 'v' })
    let res = await fetch(keyUrl('ttl/b/ttl'), json({ ttl: 30 }))
    expect(res.status).toBe(200)
    // the TTL left at the moment of the answer: 30 s, or a few ms less on a busy machine
    const changed = await res.json() as { key: string, ttl: number }
    expect(changed.key).toBe('ttl/b')
    expect(changed.ttl).toBeLessThanOrEqual(30)
    expect(changed.ttl).toBeGreaterThan(25)
    expect(Number((await fetch(keyUrl('ttl/b'))).headers.get('tetra-ttl'))).toBeGreaterThan(25)
    res = await fetch(keyUrl('ttl/b/ttl'), json({ ttl: null }))
    expect(await res.json()).toMatchObject({ ttl: null })
    expect((await fetch(keyUrl('ttl/b'))).headers.get('tetra-ttl')).toBeNull()
    await expectProblem(await fetch(keyUrl('ttl/none/ttl'), json({ ttl: 5 })), 404)
    await expectProblem(await fetch(keyUrl('ttl/b/ttl'), json({ ttl: 0 })), 400)
    await expectProblem(await fetch(keyUrl('ttl/b/ttl'), json({})), 400)
    await expectProblem(await fetch(keyUrl('ttl/b/ttl'), json({ ttl: 5, extra: 1 })), 400)
    await expectProblem(await fetch(keyUrl('ttl/b/nope'), json({})), 404)
  })

  it('POST /incr: creates at 0, adds by, 409 on a non-integer value', async () => {
    let res = await fetch(keyUrl('counter/1/incr'), { method: 'POST' })
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ key: 'counter/1', value: 1 })
    res = await fetch(keyUrl('counter/1/incr'), json({ by: 10 }))
    expect(await res.json()).toMatchObject({ value: 11 })
    res = await fetch(keyUrl('counter/1/incr'), json({ by: -20 }))
    expect(await res.json()).toMatchObject({ value: -9 })
    expect(await (await fetch(keyUrl('counter/1'))).text()).toBe('-9')
    await fetch(keyUrl('counter/text'), { method: 'PUT', body: 'hello' })
    await expectProblem(await fetch(keyUrl('counter/text/incr'), { method: 'POST' }), 409)
    await expectProblem(await fetch(keyUrl('counter/1/incr'), json({ by: 1.5 })), 400)
    await expectProblem(await fetch(keyUrl('counter/1/incr'), json({ by: '1' })), 400)
    // concurrent increments are atomic
    await Promise.all([...Array(50).keys()].map(() => fetch(keyUrl('counter/2/incr'), { method: 'POST' })))
    expect(await (await fetch(keyUrl('counter/2'))).text()).toBe('50')
  })

  it('DELETE: 204, 404 when missing, If-Match 412', async () => {
    const put = await fetch(keyUrl('del/a'), { method: 'PUT', body: 'v' })
    const etag = put.headers.get('etag')!
    await expectProblem(await fetch(keyUrl('del/a'), { method: 'DELETE', headers: { 'if-match': '"1"' } }), 412)
    let res = await fetch(keyUrl('del/a'), { method: 'DELETE', headers: { 'if-match': etag } })
    expect(res.status).toBe(204)
    await expectProblem(await fetch(keyUrl('del/a'), { method: 'DELETE' }), 404)
    await fetch(keyUrl('del/b'), { method: 'PUT', body: 'v' })
    res = await fetch(keyUrl('del/b'), { method: 'DELETE' })
    expect(res.status).toBe(204)
  })

  it('limits: key over 1 KiB is 400, value over --store-max-value is 413', async () => {
    await expectProblem(await fetch(keyUrl('k'.repeat(1025)), { method: 'PUT', body: 'v' }), 400)
    expect((await fetch(keyUrl('k'.repeat(1024)), { method: 'PUT', body: 'v' })).status).toBe(200)
    await expectProblem(await fetch(keyUrl('big', small), { method: 'PUT', body: Buffer.alloc(1025) }), 413)
    expect((await fetch(keyUrl('big', small), { method: 'PUT', body: Buffer.alloc(1024) })).status).toBe(200)
    await expectProblem(await fetch(`${small.url}/v1/store/mset`, json({ entries: [{ key: 'm', value: 'x'.repeat(1100), encoding: 'utf8' }] })), 413)
    await fetch(keyUrl('big', small), { method: 'DELETE' })
  })

  it('507 when the memory cap is reached with eviction none, and nothing is lost', async () => {
    let stored = 0
    let res: Response | undefined
    for (let i = 0; i < 100; i++) {
      res = await fetch(keyUrl(`full/${i}`, small), { method: 'PUT', body: Buffer.alloc(200, 1) })
      if (res.status !== 200) break
      stored++
    }
    expect(stored).toBeGreaterThan(0)
    await expectProblem(res!, 507)
    for (let i = 0; i < stored; i++) expect((await fetch(keyUrl(`full/${i}`, small))).status).toBe(200)
    for (let i = 0; i < stored; i++) await fetch(keyUrl(`full/${i}`, small), { method: 'DELETE' })
  })
})

describe('store over HTTP: scan and batches', () => {
  it('scans by prefix with a cursor', async () => {
    for (let i = 0; i < 25; i++) await fetch(keyUrl(`scan/${String(i).padStart(2, '0')}`) + (i % 2 === 0 ? '?ttl=100' : ''), { method: 'PUT', body: 'x'.repeat(i) })
    const keys: string[] = []
    let cursor: string | null = null
    for (let page = 0; page < 10; page++) {
      const res = await fetch(`${broker.url}/v1/store/keys?prefix=scan/&limit=10${cursor !== null ? `&cursor=${cursor}` : ''}`)
      expect(res.status).toBe(200)
      const body = await res.json() as { keys: Array<{ key: string, size: number, ttl: number | null, etag: string }>, cursor: string | null }
      keys.push(...body.keys.map(k => k.key))
      if (page === 0) {
        expect(body.keys[0]).toMatchObject({ key: 'scan/00', size: 0, etag: expect.stringMatching(/^"\d+"$/) })
        expect(body.keys[0].ttl).toBeGreaterThan(90)
        expect(body.keys[1].ttl).toBeNull()
      }
      cursor = body.cursor
      if (cursor === null) break
    }
    expect(keys).toEqual([...Array(25).keys()].map(i => `scan/${String(i).padStart(2, '0')}`))
    await expectProblem(await fetch(`${broker.url}/v1/store/keys?cursor=***`), 400)
    await expectProblem(await fetch(`${broker.url}/v1/store/keys?limit=1001`), 400)
    await expectProblem(await fetch(`${broker.url}/v1/store/keys?limit=0`), 400)
    await expectProblem(await fetch(`${broker.url}/v1/store/keys?value=1`), 400)
  })

  it('mget answers in order with null for missing; mset is atomic with ifAbsent', async () => {
    let res = await fetch(`${broker.url}/v1/store/mset`, json({
      entries: [
        { key: 'batch/json', value: { a: 1 } },
        { key: 'batch/text', value: 'héllo', encoding: 'utf8' },
        { key: 'batch/bin', value: Buffer.from([0, 255]).toString('base64'), encoding: 'base64', ttl: 60 },
        { key: 'batch/typed', value: '<p/>', encoding: 'utf8', contentType: 'text/html' }
      ]
    }))
    expect(res.status).toBe(200)
    const { etags } = await res.json() as { etags: string[] }
    expect(etags).toHaveLength(4)
    res = await fetch(`${broker.url}/v1/store/mget`, json({ keys: ['batch/json', 'batch/none', 'batch/text', 'batch/bin', 'batch/typed'] }))
    const { values } = await res.json() as { values: Array<Record<string, unknown> | null> }
    expect(values[0]).toMatchObject({ key: 'batch/json', value: { a: 1 }, contentType: 'application/json', etag: etags[0], ttl: null })
    expect(values[1]).toBeNull()
    expect(values[2]).toMatchObject({ value: 'héllo', encoding: 'utf8', contentType: 'text/plain; charset=utf-8' })
    expect(values[3]).toMatchObject({ value: Buffer.from([0, 255]).toString('base64'), encoding: 'base64', contentType: 'application/octet-stream' })
    expect(values[3]!.ttl).toBeGreaterThan(50)
    expect(values[4]).toMatchObject({ contentType: 'text/html' })
    expect(Buffer.from(await (await fetch(keyUrl('batch/bin'))).arrayBuffer()).equals(Buffer.from([0, 255]))).toBe(true)

    await expectProblem(await fetch(`${broker.url}/v1/store/mset`, json({ entries: [{ key: 'batch/new', value: 1 }, { key: 'batch/json', value: 2 }], ifAbsent: true })), 412)
    expect((await fetch(keyUrl('batch/new'))).status).toBe(404)
    await expectProblem(await fetch(`${broker.url}/v1/store/mset`, json({ entries: [{ key: 'batch/new', value: 1 }, { key: 'batch/x', value: 1, ttl: 0 }] })), 400)
    await expectProblem(await fetch(`${broker.url}/v1/store/mset`, json({ entries: [{ key: 'batch/new', value: 'a', encoding: 'base64' }] })), 400)
    await expectProblem(await fetch(`${broker.url}/v1/store/mset`, json({ entries: [] })), 400)
    await expectProblem(await fetch(`${broker.url}/v1/store/mset`, json({ entries: [{ key: 'batch/new', value: 1, contentType: 'text/plain\r\nx-evil: 1' }] })), 400)
    await expectProblem(await fetch(`${broker.url}/v1/store/mget`, json({ keys: 'a' })), 400)
    expect((await fetch(keyUrl('batch/new'))).status).toBe(404)
  })
})

describe('store over HTTP: indexes', () => {
  it('creates, lists, queries, follows writes and deletes a JSON-field index', async () => {
    await fetch(keyUrl('user/1'), { method: 'PUT', body: JSON.stringify({ name: 'a', address: { country: 'fr' } }), headers: { 'content-type': 'application/json' } })
    await fetch(keyUrl('user/2'), { method: 'PUT', body: JSON.stringify({ name: 'b', address: { country: 'de' } }), headers: { 'content-type': 'application/json' } })
    let res = await fetch(`${broker.url}/v1/store/indexes/by-country`, json({ prefix: 'user/', field: 'address.country' }, 'PUT'))
    expect(res.status).toBe(201)
    expect(await res.json()).toMatchObject({ name: 'by-country', prefix: 'user/', field: 'address.country', ready: true, indexedKeys: 2 })
    res = await fetch(`${broker.url}/v1/store/indexes/by-country`, json({ prefix: 'user/', field: 'address.country' }, 'PUT'))
    expect(res.status).toBe(200)
    await fetch(keyUrl('user/3'), { method: 'PUT', body: JSON.stringify({ address: { country: 'fr' } }) })
    const query = async (value: string): Promise<string[]> => {
      const r = await fetch(`${broker.url}/v1/store/keys?index=by-country&value=${value}`)
      expect(r.status).toBe(200)
      return (await r.json() as { keys: Array<{ key: string }> }).keys.map(k => k.key)
    }
    expect(await query('fr')).toEqual(['user/1', 'user/3'])
    await fetch(keyUrl('user/1'), { method: 'DELETE' })
    expect(await query('fr')).toEqual(['user/3'])
    expect(await query('it')).toEqual([])
    res = await fetch(`${broker.url}/v1/store/indexes`)
    expect((await res.json() as { indexes: Array<{ name: string }> }).indexes.map(i => i.name)).toContain('by-country')
    expect((await fetch(`${broker.url}/v1/store/indexes/by-country`)).status).toBe(200)
    await expectProblem(await fetch(`${broker.url}/v1/store/indexes/bad%20name`, json({ field: 'x' }, 'PUT')), 400)
    await expectProblem(await fetch(`${broker.url}/v1/store/indexes/x`, json({ field: 'x', other: 1 }, 'PUT')), 400)
    await expectProblem(await fetch(`${broker.url}/v1/store/keys?index=nope&value=1`), 404)
    expect((await fetch(`${broker.url}/v1/store/indexes/by-country`, { method: 'DELETE' })).status).toBe(204)
    await expectProblem(await fetch(`${broker.url}/v1/store/indexes/by-country`), 404)
    await expectProblem(await fetch(`${broker.url}/v1/store/indexes/by-country`, { method: 'DELETE' }), 404)
  })
})

describe('store over HTTP: watch', () => {
  it('streams set/delete/expire events under a prefix, with values on request, and resumes with Last-Event-ID', async () => {
    const sse = openSse(`${broker.url}/v1/store/watch?prefix=w/&values=true`)
    await sse.opened
    await waitFor(() => sse.comments.includes('connected'))
    await fetch(keyUrl('w/a'), { method: 'PUT', body: '{"n":1}', headers: { 'content-type': 'application/json' } })
    await fetch(keyUrl('other'), { method: 'PUT', body: 'x' })
    await fetch(keyUrl('w/b') + '?ttl=0.05', { method: 'PUT', body: Buffer.from([0xff]) })
    await fetch(keyUrl('w/a'), { method: 'DELETE' })
    await waitFor(async () => (await fetch(keyUrl('w/b'))).status === 404)
    await waitFor(() => sse.events.length >= 4)
    const events = sse.events.map(e => ({ ...e, data: JSON.parse(e.data) as Record<string, unknown> }))
    expect(events.map(e => `${e.event} ${String(e.data.key)}`)).toEqual(['set w/a', 'set w/b', 'delete w/a', 'expire w/b'])
    expect(events[0].data).toMatchObject({ type: 'set', key: 'w/a', value: { n: 1 }, contentType: 'application/json', ttl: null })
    expect(events[1].data).toMatchObject({ value: '/w==', encoding: 'base64' })
    for (const e of events) expect(e.id).toBe(String(e.data.revision))
    sse.close()

    // missed while disconnected: replayed after the last id seen
    await fetch(keyUrl('w/c'), { method: 'PUT', body: 'c' })
    await fetch(keyUrl('w/c'), { method: 'PUT', body: 'c2' })
    const resumed = openSse(`${broker.url}/v1/store/watch?prefix=w/&values=true`, { 'last-event-id': events[3].id! })
    await resumed.opened
    await waitFor(() => resumed.events.length >= 2)
    const replayed = resumed.events.map(e => JSON.parse(e.data) as Record<string, unknown>)
    expect(replayed[0]).toMatchObject({ type: 'set', key: 'w/c', superseded: true })
    expect(replayed[1]).toMatchObject({ type: 'set', key: 'w/c', value: 'c2', encoding: 'utf8' })
    // and live events go on after the replay
    await fetch(keyUrl('w/d'), { method: 'PUT', body: 'd' })
    await waitFor(() => resumed.events.length >= 3)
    expect(JSON.parse(resumed.events[2].data)).toMatchObject({ key: 'w/d', value: 'd' })
    expect(Number(resumed.events[2].id)).toBeGreaterThan(Number(resumed.events[1].id))
    resumed.close()

    // the lastEventId query parameter works like the header; without values=true no value is sent
    const byQuery = openSse(`${broker.url}/v1/store/watch?prefix=w/&lastEventId=${resumed.events[1].id!}`)
    await waitFor(() => byQuery.events.length >= 1)
    expect(JSON.parse(byQuery.events[0].data)).toEqual(expect.not.objectContaining({ value: expect.anything() }))
    expect(JSON.parse(byQuery.events[0].data)).toMatchObject({ key: 'w/d' })
    byQuery.close()
    await expectProblem(await fetch(`${broker.url}/v1/store/watch?lastEventId=abc`), 400)
  })

  it('tells of a TTL set or removed with a ttl event, live and on resume', async () => {
    await fetch(keyUrl('t/a'), { method: 'PUT', body: 'a' })
    const sse = openSse(`${broker.url}/v1/store/watch?prefix=t/`)
    await sse.opened
    await waitFor(() => sse.comments.includes('connected'))
    const setTtl = async (ttl: number | null): Promise<void> => {
      const res = await fetch(keyUrl('t/a') + '/ttl', { method: 'POST', body: JSON.stringify({ ttl }), headers: { 'content-type': 'application/json' } })
      expect(res.status).toBe(200)
    }
    await setTtl(600)
    await setTtl(null)
    await waitFor(() => sse.events.length >= 2)
    const live = sse.events.map(e => ({ id: e.id, event: e.event, data: JSON.parse(e.data) as { type: string, key: string, ttl: number | null, revision: number } }))
    expect(live.map(e => e.event)).toEqual(['ttl', 'ttl'])
    expect(live[0].data.key).toBe('t/a')
    expect(live[0].data.ttl).toBeGreaterThan(590)
    expect(live[0].data.ttl).toBeLessThanOrEqual(600)
    expect(live[1].data.ttl).toBeNull()
    for (const e of live) expect(e.id).toBe(String(e.data.revision))
    sse.close()

    const resumed = openSse(`${broker.url}/v1/store/watch?prefix=t/`, { 'last-event-id': String(live[0].data.revision - 1) })
    await waitFor(() => resumed.events.length >= 2)
    expect(resumed.events.map(e => [e.event, e.id])).toEqual(live.map(e => [e.event, e.id]))
    expect((JSON.parse(resumed.events[0].data) as { ttl: number }).ttl).toBeGreaterThan(590)
    expect((JSON.parse(resumed.events[1].data) as { ttl: number | null }).ttl).toBeNull()
    resumed.close()
  })

  it('sends a reset when the events asked for fell off the backlog', async () => {
    const first = await fetch(keyUrl('r/0', small), { method: 'PUT', body: 'v' })
    const oldId = first.headers.get('etag')!.replace(/"/g, '')
    for (let i = 1; i <= 10; i++) await fetch(keyUrl(`r/${i}`, small), { method: 'PUT', body: 'v' })
    const sse = openSse(`${small.url}/v1/store/watch?prefix=r/`, { 'last-event-id': oldId })
    await waitFor(() => sse.events.length >= 1)
    expect(sse.events[0].event).toBe('reset')
    const reset = JSON.parse(sse.events[0].data) as { revision: number }
    expect(sse.events[0].id).toBe(String(reset.revision))
    await fetch(keyUrl('r/11', small), { method: 'PUT', body: 'v' })
    await waitFor(() => sse.events.length >= 2)
    expect(sse.events[1]).toMatchObject({ event: 'set', id: String(reset.revision + 1) })
    sse.close()
    // an id from the future (e.g. from before a restart) also resets
    const future = openSse(`${small.url}/v1/store/watch`, { 'last-event-id': '9000000000000000' })
    await waitFor(() => future.events.length >= 1)
    expect(future.events[0].event).toBe('reset')
    future.close()
    for (let i = 0; i <= 11; i++) await fetch(keyUrl(`r/${i}`, small), { method: 'DELETE' })
  })
})

describe('store over HTTP: LRU eviction', () => {
  it('evicts the least recently used keys at the cap, with evict events on the watch feed', async () => {
    const lru = await startTestBroker({ storeMaxMemory: 4096, storeEviction: 'lru' })
    try {
      const sse = openSse(`${lru.url}/v1/store/watch?prefix=e/`)
      await waitFor(() => sse.comments.includes('connected'))
      for (let i = 0; i < 20; i++) expect((await fetch(keyUrl(`e/${i}`, lru), { method: 'PUT', body: Buffer.alloc(300) })).status).toBe(200)
      expect((await fetch(keyUrl('e/0', lru))).status).toBe(404)
      await waitFor(() => sse.events.some(e => e.event === 'evict'))
      const evicted = sse.events.filter(e => e.event === 'evict').map(e => (JSON.parse(e.data) as { key: string }).key)
      expect(evicted[0]).toBe('e/0')
      expect((await fetch(keyUrl('e/19', lru))).status).toBe(200)
      const metrics = await (await fetch(`${lru.url}/metrics`)).text()
      expect(Number(/^tetra_store_evictions_total (\d+)/m.exec(metrics)![1])).toBe(evicted.length)
      expect(Number(/^tetra_store_bytes (\d+)/m.exec(metrics)![1])).toBeLessThanOrEqual(4096)
      await expectProblem(await fetch(keyUrl('e/huge', lru), { method: 'PUT', body: Buffer.alloc(5000) }), 507)
      sse.close()
    } finally {
      await lru.stop()
    }
  })
})

describe('store over HTTP: batch encoding', () => {
  it('mget gives every value back as mset and PUT stored it, whichever way it is encoded', async () => {
    // what goes in, and how it comes back (bytes that are compact JSON come back as that JSON value)
    const cases: Array<{ value: unknown, encoding?: 'utf8' | 'base64', back?: { value: unknown, encoding?: string } }> = [
      { value: 'plain-token_123', encoding: 'utf8' },
      { value: 'say "hi"\\there\ttab\nline', encoding: 'utf8' },
      { value: '123', encoding: 'utf8', back: { value: 123 } },
      { value: 'true story', encoding: 'utf8' },
      { value: '-', encoding: 'utf8' },
      { value: 'ünïcode ✓', encoding: 'utf8' },
      { value: Buffer.from([1, 2, 0x7f, 0x80]).toString('base64'), encoding: 'base64' },
      { value: { nested: [1, 'two', null] } },
      { value: 42 },
      { value: 'json string' },
      { value: '', encoding: 'utf8' }
    ]
    const entries = cases.map((c, i) => ({ key: `enc/${i}`, value: c.value, ...(c.encoding !== undefined ? { encoding: c.encoding } : {}) }))
    const res = await fetch(`${broker.url}/v1/store/mset`, json({ entries }))
    expect(res.status).toBe(200)
    const { etags } = await res.json() as { etags: string[] }
    const got = await (await fetch(`${broker.url}/v1/store/mget`, json({ keys: entries.map(e => e.key) }))).json() as { values: Array<Record<string, unknown>> }
    for (let i = 0; i < cases.length; i++) {
      const back = cases[i].back ?? { value: cases[i].value, encoding: cases[i].encoding }
      expect(got.values[i]).toMatchObject({ key: `enc/${i}`, value: back.value, etag: etags[i], ttl: null })
      expect(got.values[i].encoding).toBe(back.encoding)
    }
    // PUT bodies that are printable ASCII but JSON-like are given back as JSON values
    await fetch(keyUrl('enc/put-json'), { method: 'PUT', body: '{"a":1}', headers: { 'content-type': 'application/json' } })
    await fetch(keyUrl('enc/put-text'), { method: 'PUT', body: '{"a": 1}', headers: { 'content-type': 'text/plain' } })
    const put = await (await fetch(`${broker.url}/v1/store/mget`, json({ keys: ['enc/put-json', 'enc/put-text'] }))).json() as { values: Array<Record<string, unknown>> }
    expect(put.values[0]).toMatchObject({ value: { a: 1 }, contentType: 'application/json' })
    expect(put.values[0].encoding).toBeUndefined()
    expect(put.values[1]).toMatchObject({ value: '{"a": 1}', encoding: 'utf8', contentType: 'text/plain' })
  })

  it('formats large revisions exactly as their decimal text', () => {
    const samples = [0, 7, 99_999_999, 100_000_000, 100_000_001, 1_763_800_000_000_000, 1_763_899_999_999_999, Number.MAX_SAFE_INTEGER]
    for (let i = 0; i < 1000; i++) samples.push(Math.floor(Math.random() * Number.MAX_SAFE_INTEGER))
    for (const r of samples) expect(revisionText(r)).toBe(String(r))
  })
})

describe('store over HTTP: metrics and docs', () => {
  it('exposes store gauges and counters, and the routes in the OpenAPI document', async () => {
    await fetch(keyUrl('metrics/a'), { method: 'PUT', body: 'v' })
    await fetch(keyUrl('metrics/a'))
    await fetch(keyUrl('metrics/missing'))
    const text = await (await fetch(`${broker.url}/metrics`)).text()
    for (const name of ['tetra_store_keys', 'tetra_store_bytes', 'tetra_store_hits_total', 'tetra_store_misses_total', 'tetra_store_evictions_total', 'tetra_store_expirations_total']) {
      expect(text).toMatch(new RegExp(`^${name} \\d+`, 'm'))
    }
    expect(Number(/^tetra_store_keys (\d+)/m.exec(text)![1])).toBe(broker.engines.store.size)
    const doc = await (await fetch(`${broker.url}/openapi.json`)).json() as { paths: Record<string, unknown> }
    for (const path of ['/v1/store/keys/{key}', '/v1/store/keys/{key}/incr', '/v1/store/keys/{key}/ttl', '/v1/store/keys', '/v1/store/mget', '/v1/store/mset', '/v1/store/watch', '/v1/store/indexes/{name}']) {
      expect(Object.keys(doc.paths)).toContain(path)
    }
  })
})
