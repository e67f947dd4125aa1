import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openSse, startTestBroker, waitFor, type TestBroker } from '../helpers.js'

let broker: TestBroker
beforeAll(async () => { broker = await startTestBroker() })
afterAll(async () => { await broker.stop() })

describe('operations endpoints', () => {
  it('/healthz and /readyz answer ok while running', async () => {
    expect(await (await fetch(`${broker.url}/healthz`)).json()).toEqual({ status: 'ok' })
    const ready = await fetch(`${broker.url}/readyz`)
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({ status: 'ready' })
  })

  it('/metrics speaks the Prometheus text format with process and broker figures', async () => {
    await fetch(`${broker.url}/healthz`)
    const res = await fetch(`${broker.url}/metrics`)
    expect(res.headers.get('content-type')).toMatch(/text\/plain/)
    const text = await res.text()
    for (const name of ['process_resident_memory_bytes', 'tetra_mqtt_connections', 'tetra_messages_in_total', 'tetra_messages_out_total', 'tetra_http_request_duration_seconds_bucket', 'tetra_storage_batches_total']) {
      expect(text).toContain(name)
    }
    expect(text).toMatch(/tetra_http_request_duration_seconds_count\{method="GET",route="\/healthz",status="200"\} [1-9]/)
  })

  it('/metrics counts SSE clients and the events sent to them, by feed', async () => {
    const sse = openSse(`${broker.url}/v1/pubsub/subscribe?filter=metrics/%23&retained=false`)
    try {
      await sse.opened
      await waitFor(() => broker.engines.pubsub.activeSubscriptions > 0)
      for (let i = 0; i < 3; i++) {
        await fetch(`${broker.url}/v1/pubsub/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: `metrics/${i}`, payload: i }) })
      }
      await waitFor(() => sse.events.length === 3)
      const text = await (await fetch(`${broker.url}/metrics`)).text()
      expect(text).toMatch(/tetra_sse_events_total\{feed="pubsub"\} 3\n/)
      expect(text).toMatch(/tetra_sse_clients\{feed="pubsub"\} 1\n/)
    } finally {
      sse.close()
    }
  })

  it('/openapi.json documents the public routes and /docs serves Swagger UI', async () => {
    const doc = await (await fetch(`${broker.url}/openapi.json`)).json() as { openapi: string, paths: Record<string, unknown> }
    expect(doc.openapi).toMatch(/^3\./)
    for (const path of ['/v1/pubsub/publish', '/v1/pubsub/subscribe', '/v1/pubsub/retained', '/healthz', '/readyz', '/metrics']) {
      expect(Object.keys(doc.paths)).toContain(path)
    }
    const docs = await fetch(`${broker.url}/docs`, { redirect: 'follow' })
    expect(docs.status).toBe(200)
    expect(await docs.text()).toMatch(/swagger/i)
  })

  it('serves the page at /', async () => {
    const res = await fetch(`${broker.url}/`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/text\/html/)
    expect(await res.text()).toContain('Tetra')
  })
})
