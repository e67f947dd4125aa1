import { request, type IncomingMessage } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBroker, waitFor, type TestBroker } from '../helpers.js'

let broker: TestBroker
beforeAll(async () => { broker = await startTestBroker() })
afterAll(async () => { await broker.stop() })

describe('store watch: a slow reader', () => {
  it('misses nothing: while its socket is full it stops taking live events, then catches up from the backlog', async () => {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(`${broker.url}/v1/store/watch?prefix=slow/&values=true`, { headers: { accept: 'text/event-stream' } }, resolve)
      req.on('error', reject)
      req.end()
    })
    let text = ''
    res.setEncoding('utf8')
    res.on('data', (chunk: string) => { text += chunk })
    await waitFor(() => text.includes(': connected'))
    // stop reading: the server's socket buffer fills up with the large events below
    res.pause()
    const value = Buffer.alloc(512 * 1024, 'x')
    const count = 40
    for (let i = 0; i < count; i++) {
      const put = await fetch(`${broker.url}/v1/store/keys/slow/${i}`, { method: 'PUT', body: value })
      expect(put.status).toBe(200)
    }
    res.resume()
    const events = (): Array<{ id: string, event: string, data: { key: string, value: string } }> => text.split('\n\n').slice(0, -1) // the last piece may be an event still arriving
      .filter(block => block.includes('data: '))
      .map(block => {
        const lines = block.split('\n')
        const field = (name: string): string => lines.find(l => l.startsWith(`${name}: `))?.slice(name.length + 2) ?? ''
        return { id: field('id'), event: field('event'), data: JSON.parse(field('data')) as { key: string, value: string } }
      })
    await waitFor(() => events().length >= count, 20_000, 'all events')
    const got = events()
    expect(got.map(e => e.data.key)).toEqual([...Array(count).keys()].map(i => `slow/${i}`))
    expect(got.every(e => e.event === 'set' && e.data.value.length === value.length)).toBe(true)
    for (let i = 1; i < got.length; i++) expect(Number(got[i].id)).toBe(Number(got[i - 1].id) + 1)
    res.destroy()
  })
})
